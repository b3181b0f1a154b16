// Token-id requests from a JSON Lines file (see request_file.h).
#include "executor/runtime/request_file.h"

#include "base/input_file.h"

#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "executor/runtime/run_error.h"

namespace shardplan {
namespace {

// The keys of a request that a later form of --requests takes (prompt text, media, sampling,
// stopping): named in the error rather than ignored.
const std::set<std::string>& later_keys() {
  static const std::set<std::string> keys{"prompt", "images", "audio", "temperature", "top_p",
                                          "top_k", "seed", "stop", "ignore_eos"};
  return keys;
}

}  // namespace

TokenRequests read_request_file(const std::string& path, int64_t vocab) {
  std::ifstream in(path);
  if (!in) throw RunError(RunError::Code::kUsage, "--requests " + path + ": cannot open");
  const auto fail = [&](int64_t line, const std::string& what) {
    return RunError(RunError::Code::kUsage, path + ":" + std::to_string(line) + ": " + what);
  };
  TokenRequests out;
  std::string text;
  int64_t line = 0, first_line = 0;
  while (std::getline(in, text)) {
    ++line;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json r;
    try {
      r = parse_json_limited(text);
    } catch (const std::exception& e) {
      throw fail(line, std::string("not valid JSON: ") + e.what());
    }
    if (!r.is_object()) throw fail(line, "expected a JSON object, got " + std::string(r.type_name()));
    for (const auto& [key, value] : r.items()) {
      if (key == "prompt_token_ids" || key == "max_tokens") continue;
      if (later_keys().count(key)) {
        throw fail(line, "'" + key + "' is not supported by the executor yet (this form of --requests takes "
                                     "prompt_token_ids and max_tokens)");
      }
      throw fail(line, "unknown field '" + key + "' (known: prompt_token_ids, max_tokens)");
    }
    if (!r.contains("prompt_token_ids")) throw fail(line, "'prompt_token_ids' is missing");
    const nlohmann::json& ids = r["prompt_token_ids"];
    if (!ids.is_array() || ids.empty()) throw fail(line, "'prompt_token_ids' must be a non-empty array of token ids");
    std::vector<int64_t> prompt;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (!ids[i].is_number_integer() || ids[i].get<int64_t>() < 0 || ids[i].get<int64_t>() >= vocab) {
        throw fail(line, "'prompt_token_ids'[" + std::to_string(i) + "] is " + ids[i].dump() +
                             ", not a token id in [0, " + std::to_string(vocab) + ")");
      }
      prompt.push_back(ids[i].get<int64_t>());
    }
    if (!r.contains("max_tokens")) throw fail(line, "'max_tokens' is missing");
    const nlohmann::json& max = r["max_tokens"];
    if (!max.is_number_integer() || max.get<int64_t>() < 1) {
      throw fail(line, "'max_tokens' is " + max.dump() + ", expected an integer >= 1");
    }
    if (out.prompts.empty()) {
      first_line = line;
      out.max_tokens = max.get<int64_t>();
    } else if (prompt.size() != out.prompts.front().size()) {
      throw fail(line, "'prompt_token_ids' has " + std::to_string(prompt.size()) + " tokens, line " +
                           std::to_string(first_line) + " has " + std::to_string(out.prompts.front().size()) +
                           ": requests of different lengths in one batch are not supported by the executor yet");
    } else if (max.get<int64_t>() != out.max_tokens) {
      throw fail(line, "'max_tokens' is " + max.dump() + ", line " + std::to_string(first_line) + " has " +
                           std::to_string(out.max_tokens) +
                           ": different max_tokens in one batch are not supported by the executor yet");
    }
    out.prompts.push_back(std::move(prompt));
  }
  if (in.bad()) throw RunError(RunError::Code::kUsage, "--requests " + path + ": read error");
  if (out.prompts.empty()) throw RunError(RunError::Code::kUsage, "--requests " + path + ": no request in the file");
  return out;
}

}  // namespace shardplan
