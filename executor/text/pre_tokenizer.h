// tokenizer.json's "pre_tokenizer": splits each normalized piece into the words the model
// tokenizes on its own (ByteLevel with GPT-2's regex, Split, Metaspace, Digits, Punctuation,
// Whitespace, WhitespaceSplit). Sequences are flattened into one list of steps. Refused by
// name: BertPreTokenizer, UnicodeScripts, CharDelimiterSplit, FixedLength and anything unknown.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "executor/text/regex.h"
#include "executor/text/text_piece.h"

namespace shardplan {

struct PreTokenizerStep {
  enum class Kind { kByteLevel, kSplit, kMetaspace, kDigits, kPunctuation, kWhitespace, kWhitespaceSplit };
  enum class Prepend { kAlways, kFirst, kNever };
  Kind kind = Kind::kByteLevel;
  bool add_prefix_space = false;                      // kByteLevel
  bool use_regex = true;                              // kByteLevel
  std::shared_ptr<SplitPattern> pattern;              // kSplit; kByteLevel with use_regex (GPT-2's)
  SplitBehavior behavior = SplitBehavior::kIsolated;  // kSplit, kPunctuation
  bool invert = false;                                // kSplit
  std::string replacement;                            // kMetaspace: the character, in UTF-8
  Prepend prepend = Prepend::kAlways;                 // kMetaspace
  bool split = true;                                  // kMetaspace
  bool individual_digits = false;                     // kDigits
};

class PreTokenizer {
 public:
  // From the "pre_tokenizer" value (null: each piece is one word). Throws TokenizerError.
  static PreTokenizer parse(const nlohmann::json& value, const std::string& path);

  // Splits the pieces without a token id in `pieces` (in place); added tokens pass through.
  void pre_tokenize(std::vector<TextPiece>& pieces) const;

 private:
  void add(const nlohmann::json& value, const std::string& path);
  void apply(const PreTokenizerStep& step, TextPiece&& piece, std::vector<TextPiece>& out) const;
  std::vector<PreTokenizerStep> steps_;
};

// GPT-2's pre-tokenization regex (the ByteLevel pre-tokenizer's, in Oniguruma syntax).
extern const char* const kGpt2Pattern;

}  // namespace shardplan
