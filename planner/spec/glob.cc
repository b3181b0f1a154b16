// Module-path glob matching (see glob.h).
#include "planner/spec/glob.h"

#include <fnmatch.h>

#include <vector>

namespace shardplan {
namespace {

std::vector<std::string> split_segments(const std::string& text) {
  std::vector<std::string> out;
  std::string current;
  for (char c : text) {
    if (c == '.') {
      out.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  out.push_back(current);
  return out;
}

bool match_from(const std::vector<std::string>& pat, size_t pi, const std::vector<std::string>& seg,
                size_t si) {
  if (pi == pat.size()) return si == seg.size();
  if (pat[pi] == "**") {
    // Zero or more segments.
    for (size_t k = si; k <= seg.size(); ++k) {
      if (match_from(pat, pi + 1, seg, k)) return true;
    }
    return false;
  }
  if (si == seg.size()) return false;
  if (fnmatch(pat[pi].c_str(), seg[si].c_str(), 0) != 0) return false;
  return match_from(pat, pi + 1, seg, si + 1);
}

}  // namespace

bool glob_match(const std::string& pattern, const std::string& path) {
  return match_from(split_segments(pattern), 0, split_segments(path), 0);
}

}  // namespace shardplan
