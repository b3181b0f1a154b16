// Formatting of the CommError messages raised through SHARDPLAN_COMM_CHECK (comm_check.h).
#include "executor/comm/comm_check.h"

#include <cstring>

namespace shardplan {

std::string format_rank_list(const RankList& ranks) {
  std::string text = "[";
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (i > 0) text += ",";
    text += std::to_string(ranks[i]);
  }
  return text + "]";
}

std::string describe_collective(const CommCallSite& site) {
  std::string text = site.op;
  if (!site.group.empty()) text += " over group " + site.group;
  if (!site.what.empty()) text += " (\"" + site.what + "\")";
  return text;
}

std::string describe_call_site(const CommCallSite& site) {
  return "rank " + std::to_string(site.rank) + ": " + describe_collective(site);
}

void throw_comm_error(const CommCallSite& site, const char* call, const char* file, int line,
                      const std::string& cause) {
  const char* slash = std::strrchr(file, '/');
  const char* base = slash != nullptr ? slash + 1 : file;
  std::string trimmed = cause;
  while (!trimmed.empty() && (trimmed.back() == '\n' || trimmed.back() == ' ')) trimmed.pop_back();
  throw CommError(describe_call_site(site) + " failed: " + call + " (" + base + ":" + std::to_string(line) +
                  "): " + trimmed);
}

}  // namespace shardplan
