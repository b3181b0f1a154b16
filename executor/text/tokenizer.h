// Tokenizer: a Hugging Face tokenizer.json (BPE models) read and run exactly as the `tokenizers`
// library runs it: added tokens split off first, then normalization, pre-tokenization, the BPE
// model and the post-processor; decode through the decoder. docs/tokenizers.md lists what is
// supported and what is refused. Torch-free.
//
//   Tokenizer tok = Tokenizer::load("build/models/smollm2-135m-instruct");
//   tok.encode("<|im_start|>user\nHi")   -> {1, 4093, 198, 17830}
//   tok.decode({1, 4093}, true)          -> "user"
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "executor/text/tokenizer_error.h"

namespace shardplan {

// The largest tokenizer.json read (Gemma's is 34 MiB).
inline constexpr int64_t kMaxTokenizerJsonBytes = int64_t{128} << 20;

class Tokenizer {
 public:
  // path: a folder with tokenizer.json (and optionally generation_config.json, config.json,
  // tokenizer_config.json), or the tokenizer.json file itself. Throws TokenizerError: exit code 2
  // for I/O and what is not supported, 1 for malformed content.
  static Tokenizer load(const std::string& path);

  // The ids of `text` (valid UTF-8, else TokenizerError), with the post-processor's special
  // tokens when add_special_tokens.
  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // The text of `ids`; ids no token has are skipped (as tokenizers does), negative ones refused.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const;

  // From generation_config.json's eos_token_id (an id or a list), else config.json's, else
  // tokenizer_config.json's eos_token; empty when none of them says.
  const std::vector<int64_t>& eos_token_ids() const;
  std::optional<int64_t> token_to_id(std::string_view token) const;
  // The token of an id (an added token's content, else the model's), or nullopt.
  std::optional<std::string> id_to_token(int64_t id) const;
  // The vocabulary's size including the added tokens it lacks (tokenizers' get_vocab_size(true)).
  int64_t vocab_size() const;

 private:
  struct Parts;
  std::shared_ptr<const Parts> parts_;
  std::vector<int64_t> eos_token_ids_;
};

}  // namespace shardplan
