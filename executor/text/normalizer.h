// tokenizer.json's "normalizer": the steps applied to each piece of the input that is not an
// added token matched on the raw text (NFC, Lowercase, Prepend("▁"), Replace(" ", "▁"), ...).
// Sequences are flattened into one list of steps. Refused by name: Precompiled and anything
// unknown.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "executor/text/regex.h"
#include "executor/text/unicode.h"

namespace shardplan {

struct NormalizerStep {
  enum class Kind { kUnicode, kLowercase, kStrip, kPrepend, kReplace, kBert, kStripAccents, kByteLevel };
  Kind kind = Kind::kLowercase;
  NormalForm form = NormalForm::kNfc;     // kUnicode
  bool strip_left = false;                // kStrip
  bool strip_right = false;               // kStrip
  std::string text;                       // kPrepend: the prefix; kReplace: the replacement
  std::shared_ptr<SplitPattern> pattern;  // kReplace
  bool clean_text = false;                // kBert
  bool handle_chinese_chars = false;      // kBert
  bool strip_accents = false;             // kBert
  bool lowercase = false;                 // kBert
};

class Normalizer {
 public:
  // From the "normalizer" value (null: no normalization). Throws TokenizerError.
  static Normalizer parse(const nlohmann::json& value, const std::string& path);

  bool empty() const { return steps_.empty(); }
  // Normalizes `text` in place. Returns whether characters at its start were removed (Strip,
  // Replace with "", ...): the piece then no longer starts at its original offset.
  bool normalize(std::string& text) const;

 private:
  void add(const nlohmann::json& value, const std::string& path);
  std::vector<NormalizerStep> steps_;
};

}  // namespace shardplan
