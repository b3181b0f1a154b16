// Diagnostics: every problem found in a spec, with the file position it points at. Checks
// collect them all and the CLI prints them at the end ("FILE:LINE:COL: error: MESSAGE").
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace shardplan {

enum class Severity { kError, kWarning };

struct SourcePos {
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based
};

struct Diagnostic {
  std::string file;
  SourcePos pos;
  Severity severity = Severity::kError;
  std::string message;
};

// Where `s` stops being UTF-8 (the offset of the first bad byte), or npos when it is valid
// (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF).
size_t invalid_utf8_at(const std::string& s);
// `s` with every byte that breaks UTF-8 written as "\xNN": "key\xFF" for "key" + byte 0xFF.
std::string escape_invalid_utf8(const std::string& s);

// "spec.yaml:14:11: error: MESSAGE"
std::string format_diagnostic(const Diagnostic& d);

// "; did you mean 'tensor'?" when one of `choices` is close to `word` (edit distance, ignoring
// case, at most a third of its length and at least 1, the closest one alone; a word of up to 3
// letters only to names with its first letter: dp is not a typo of tp); "" otherwise.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& choices);

class Diagnostics {
 public:
  // Every diagnostic's file and message are valid UTF-8 (escape_invalid_utf8), whatever bytes
  // the spec or the command line held: JSON output carries them all.
  void error(const std::string& file, SourcePos pos, std::string message);
  void warning(const std::string& file, SourcePos pos, std::string message);
  void add(Diagnostic d);
  bool has_errors() const;
  const std::vector<Diagnostic>& all() const { return items_; }
  // Stable order: by line, then column, then message; the order checks ran in does not leak out.
  void sort();

 private:
  std::vector<Diagnostic> items_;
};

}  // namespace shardplan
