// Diagnostics: every problem found in a spec, with the file position it points at. Checks
// collect them all and the CLI prints them at the end ("FILE:LINE:COL: error: MESSAGE").
#pragma once

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

// "spec.yaml:14:11: error: MESSAGE"
std::string format_diagnostic(const Diagnostic& d);

class Diagnostics {
 public:
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
