// The regular expressions of tokenizer.json (Split and Replace patterns), written for
// Oniguruma's Ruby syntax as the Hugging Face tokenizers library runs them, compiled with PCRE2
// (UTF + UCP, JIT). translate_oniguruma() rewrites the constructs whose meaning differs:
//   \s \S  White_Space (Oniguruma) vs PCRE2's \s, which also takes U+180E   -> [\p{Z}\t-\r\x{85}]
//   \w \W  Letter|Mark|Number|Connector_Punctuation vs PCRE2's L|N|_          -> [\p{L}\p{M}\p{N}\p{Pc}]
//   \h \H  a hex digit vs PCRE2's horizontal space                            -> [0-9A-Fa-f]
//   ^ $    line anchors in Ruby syntax                                         -> PCRE2_MULTILINE
//   (?m)   dot-all in Ruby syntax                                              -> (?s)
// A negated class escape inside a bracket ([^\S]) cannot be rewritten and is refused.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shardplan {

// A byte range [start, end) of a text and whether the pattern matched it: the pieces that cover
// the whole text in order, as tokenizers' Pattern::find_matches returns them.
struct PatternSpan {
  size_t start;
  size_t end;
  bool is_match;
};

std::string translate_oniguruma(std::string_view pattern);

class Regex {
 public:
  // Throws TokenizerError (exit 1) naming `where` when the pattern does not compile.
  static Regex compile_oniguruma(const std::string& pattern, const std::string& where);
  // A pattern in PCRE2's own syntax (for the fixed patterns of this library).
  static Regex compile_pcre2(const std::string& pattern, const std::string& where);

  // The matches in `text` as Oniguruma's find_iter yields them: leftmost, non-overlapping, and
  // no empty match right where the previous match ended. `text` is valid UTF-8.
  void find_matches(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;
  // Whether the pattern matches at `pos` exactly (anchored there).
  bool matches_at(std::string_view text, size_t pos) const;

  // The compiled pattern (PCRE2's code, JIT-compiled where the platform can).
  struct Code;

 private:
  std::shared_ptr<const Code> code_;
};

// The pieces of `text` by the matches of a pattern (see PatternSpan): a literal string or a regex.
class SplitPattern {
 public:
  static SplitPattern literal(std::string text, const std::string& where);
  static SplitPattern regex(const std::string& pattern, const std::string& where);
  void find_spans(std::string_view text, std::vector<PatternSpan>& out) const;

 private:
  std::string literal_;
  std::shared_ptr<Regex> regex_;
};

}  // namespace shardplan
