// The model's tokenizer as `executor run --requests` uses it: text prompts to ids, generated ids to
// text, the end-of-sequence ids (executor/text's Tokenizer; an executor built without it,
// SHARDPLAN_WITH_REQUESTS off, refuses text prompts). No libtorch here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace shardplan {

class RequestText {
 public:
  virtual ~RequestText() = default;
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;   // with the special tokens
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;    // special tokens skipped
  virtual const std::vector<int64_t>& eos_token_ids() const = 0;
};

// The tokenizer of `model_dir` (its tokenizer.json; generation_config.json for the end of a
// sequence). Null when the folder has no tokenizer.json and `required` is false; RunError (exit 2)
// when it is required and absent, or the executor was built without tokenizers; the tokenizer's
// own errors otherwise.
std::unique_ptr<RequestText> load_request_text(const std::string& model_dir, bool required);

}  // namespace shardplan
