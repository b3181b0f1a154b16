// tokenizer.json's "decoder": how the tokens of decode's ids become text (tokenizers'
// Decoder::decode_chain, step after step, then the pieces joined). ByteLevel, Metaspace,
// Replace, ByteFallback, Fuse, Strip, WordPiece, BPEDecoder; Sequences are flattened. Refused by
// name: CTC and anything unknown. Without a decoder the tokens are joined with spaces.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "executor/text/regex.h"

namespace shardplan {

struct DecoderStep {
  enum class Kind { kByteLevel, kMetaspace, kReplace, kByteFallback, kFuse, kStrip, kWordPiece, kBpe };
  Kind kind = Kind::kFuse;
  char32_t replacement = 0;               // kMetaspace
  bool prepend = true;                    // kMetaspace: prepend_scheme is not "never"
  std::shared_ptr<SplitPattern> pattern;  // kReplace
  std::string text;                       // kReplace: content; kWordPiece: prefix; kBpe: suffix
  char32_t content = 0;                   // kStrip
  size_t start = 0;                       // kStrip
  size_t stop = 0;                        // kStrip
  bool cleanup = true;                    // kWordPiece
};

class Decoder {
 public:
  // From the "decoder" value (null: tokens joined with " "). Throws TokenizerError.
  static Decoder parse(const nlohmann::json& value, const std::string& path);

  std::string decode(std::vector<std::string> tokens) const;

 private:
  void add(const nlohmann::json& value, const std::string& path);
  bool none_ = true;
  std::vector<DecoderStep> steps_;
};

}  // namespace shardplan
