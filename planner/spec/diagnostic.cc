// Diagnostics: collecting, ordering and printing the problems found in specs.
#include "planner/spec/diagnostic.h"

#include <algorithm>
#include <map>
#include <tuple>
#include <utility>

namespace shardplan {

std::string format_diagnostic(const Diagnostic& d) {
  std::string out = d.file;
  // NOTE: line 0 means "no position known" (diagnostic.h); printing ":0:0" would send editors to
  // a line that does not exist, so the position is left out, as compilers do for file-level errors.
  if (d.pos.line > 0) {
    out += ":" + std::to_string(d.pos.line);
    if (d.pos.column > 0) out += ":" + std::to_string(d.pos.column);
  }
  out += d.severity == Severity::kError ? ": error: " : ": warning: ";
  out += d.message;
  return out;
}

void Diagnostics::error(const std::string& file, SourcePos pos, std::string message) {
  add(Diagnostic{file, pos, Severity::kError, std::move(message)});
}

void Diagnostics::warning(const std::string& file, SourcePos pos, std::string message) {
  add(Diagnostic{file, pos, Severity::kWarning, std::move(message)});
}

void Diagnostics::add(Diagnostic d) { items_.push_back(std::move(d)); }

bool Diagnostics::has_errors() const {
  return std::any_of(items_.begin(), items_.end(),
                     [](const Diagnostic& d) { return d.severity == Severity::kError; });
}

void Diagnostics::sort() {
  // NOTE: `planner check a.yaml b.yaml` collects several files in one Diagnostics; files keep the
  // order they first appeared in (the command line's), and within a file the order is by line,
  // column, message, then errors before warnings, so the output never depends on check order.
  std::map<std::string, size_t> file_rank;
  for (const Diagnostic& d : items_) file_rank.emplace(d.file, file_rank.size());
  auto key = [&](const Diagnostic& d) {
    return std::tuple<size_t, int, int, const std::string&, int>(
        file_rank.at(d.file), d.pos.line, d.pos.column, d.message,
        d.severity == Severity::kError ? 0 : 1);
  };
  std::stable_sort(items_.begin(), items_.end(),
                   [&](const Diagnostic& a, const Diagnostic& b) { return key(a) < key(b); });
}

}  // namespace shardplan
