// Diagnostics: collecting, ordering and printing the problems found in specs.
#include "planner/spec/diagnostic.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <map>
#include <tuple>
#include <utility>
#include <vector>

namespace shardplan {

// Where `s` stops being UTF-8 (the offset of the first bad byte), or npos when it is valid
// (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF).
size_t invalid_utf8_at(const std::string& s) {
  const auto* b = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = b[i];
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return i;
    }
    for (size_t k = 1; k <= n; ++k) {
      if (i + k >= s.size() || (b[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (b[i + k] & 0x3F);
    }
    const uint32_t min[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += n + 1;
  }
  return std::string::npos;
}

std::string escape_invalid_utf8(const std::string& s) {
  std::string out;
  size_t from = 0;
  while (from < s.size()) {
    const size_t bad = invalid_utf8_at(s.substr(from));
    if (bad == std::string::npos) break;
    char hex[8];
    std::snprintf(hex, sizeof hex, "\\x%02X", static_cast<unsigned char>(s[from + bad]));
    out.append(s, from, bad);
    out += hex;
    from += bad + 1;
  }
  out.append(s, from, std::string::npos);
  return out;
}

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

void Diagnostics::add(Diagnostic d) {
  // NOTE: a message may quote the user's bytes (yaml-cpp's "unknown escape character: \x88"), and
  // a file name is whatever the command line gave: JSON output cannot carry a byte that is not
  // UTF-8, so such bytes are written as \xNN here, once for every output.
  d.file = escape_invalid_utf8(d.file);
  d.message = escape_invalid_utf8(d.message);
  items_.push_back(std::move(d));
}

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

namespace {

// Levenshtein distance of the lower-cased words (two rows of the table).
size_t edit_distance(const std::string& a, const std::string& b) {
  const auto lower = [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); };
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t substitute = prev[j - 1] + (lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, substitute});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

std::string did_you_mean(const std::string& word, const std::vector<std::string>& choices) {
  // NOTE: long words are not compared (a spec's names are short; the table is len x len).
  if (word.empty() || word.size() > 64) return "";
  const size_t limit = std::max<size_t>(1, word.size() / 3);
  size_t best = limit + 1;
  std::string pick;
  bool tie = false;
  for (const std::string& c : choices) {
    if (c == word || c.size() > 64 || c.empty()) continue;
    // A short word one edit from another is often another word (dp and tp): it must at least
    // begin with the same letter.
    if (word.size() <= 3 && std::tolower(static_cast<unsigned char>(c[0])) !=
                                std::tolower(static_cast<unsigned char>(word[0]))) {
      continue;
    }
    const size_t d = edit_distance(word, c);
    if (d < best) {
      best = d;
      pick = c;
      tie = false;
    } else if (d == best) {
      tie = true;
    }
  }
  return best <= limit && !tie ? "; did you mean '" + pick + "'?" : "";
}

}  // namespace shardplan
