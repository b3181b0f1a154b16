// Requests from a JSON Lines file (see request_file.h).
#include "executor/runtime/request_file.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "base/input_file.h"
#include "executor/runtime/run_error.h"

namespace shardplan {

std::vector<Request> read_request_file(const std::string& path, int64_t vocab, const TokenizeFn& tokenize) {
  std::ifstream in(path);
  if (!in) throw RunError(RunError::Code::kUsage, "--requests " + path + ": cannot open");
  const auto fail = [&](int64_t line, const std::string& what) {
    return RunError(RunError::Code::kUsage, path + ":" + std::to_string(line) + ": " + what);
  };
  static const std::set<std::string> known{"prompt", "prompt_token_ids", "max_tokens", "temperature", "top_p",
                                           "top_k", "seed", "stop", "ignore_eos", "images", "audio"};
  const std::filesystem::path base = std::filesystem::path(path).parent_path();
  const auto media_path = [&](const std::string& p) { return p.empty() || p[0] == '/' ? p : (base / p).string(); };
  std::vector<Request> out;
  std::string text;
  int64_t line = 0;
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
      if (known.count(key)) continue;
      throw fail(line, "unknown field '" + key +
                           "' (known: prompt, prompt_token_ids, max_tokens, temperature, top_p, top_k, seed, stop, "
                           "ignore_eos, images, audio)");
    }
    Request q;
    const bool has_text = r.contains("prompt"), has_ids = r.contains("prompt_token_ids");
    if (has_text == has_ids) throw fail(line, "give exactly one of 'prompt' and 'prompt_token_ids'");
    if (has_text) {
      if (!r["prompt"].is_string()) throw fail(line, "'prompt' must be a string");
      if (!tokenize) {
        throw fail(line, "'prompt' needs the model's tokenizer (tokenizer.json in the checkpoint folder, or --tokenizer DIR)");
      }
      try {
        q.prompt_ids = tokenize(r["prompt"].get<std::string>());
      } catch (const Error& e) {
        throw fail(line, std::string("'prompt': ") + e.what());
      }
      q.text_prompt = true;
      if (q.prompt_ids.empty()) throw fail(line, "'prompt' gives no token");
    } else {
      const nlohmann::json& ids = r["prompt_token_ids"];
      if (!ids.is_array() || ids.empty()) throw fail(line, "'prompt_token_ids' must be a non-empty array of token ids");
      for (size_t i = 0; i < ids.size(); ++i) {
        if (!ids[i].is_number_integer() || ids[i].get<int64_t>() < 0 || ids[i].get<int64_t>() >= vocab) {
          throw fail(line, "'prompt_token_ids'[" + std::to_string(i) + "] is " + ids[i].dump() +
                               ", not a token id in [0, " + std::to_string(vocab) + ")");
        }
        q.prompt_ids.push_back(ids[i].get<int64_t>());
      }
    }
    for (int64_t id : q.prompt_ids) {
      if (id < 0 || id >= vocab) {
        throw fail(line, "the tokenizer gave id " + std::to_string(id) + ", outside the model's vocabulary of " +
                             std::to_string(vocab));
      }
    }
    if (r.contains("max_tokens")) {
      const nlohmann::json& v = r["max_tokens"];
      if (!v.is_number_integer() || v.get<int64_t>() < 1) {
        throw fail(line, "'max_tokens' is " + v.dump() + ", expected an integer >= 1");
      }
      q.max_tokens = v.get<int64_t>();
    }
    if (r.contains("temperature")) {
      const nlohmann::json& v = r["temperature"];
      if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0) {
        throw fail(line, "'temperature' is " + v.dump() + ", expected a number >= 0 (0: greedy)");
      }
      q.sampling.temperature = v.get<double>();
    }
    if (r.contains("top_p")) {
      const nlohmann::json& v = r["top_p"];
      if (!v.is_number() || !(v.get<double>() > 0 && v.get<double>() <= 1)) {
        throw fail(line, "'top_p' is " + v.dump() + ", expected a number in (0, 1]");
      }
      q.sampling.top_p = v.get<double>();
    }
    if (r.contains("top_k")) {
      const nlohmann::json& v = r["top_k"];
      if (!v.is_number_integer() || v.get<int64_t>() < -1) {
        throw fail(line, "'top_k' is " + v.dump() + ", expected an integer >= 1, or 0 or -1 for every token");
      }
      q.sampling.top_k = std::max<int64_t>(v.get<int64_t>(), 0);
    }
    if (r.contains("seed")) {
      const nlohmann::json& v = r["seed"];
      if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0)) {
        throw fail(line, "'seed' is " + v.dump() + ", expected an integer >= 0");
      }
      q.sampling.seed = v.get<uint64_t>();
    }
    if (r.contains("stop")) {
      const nlohmann::json& v = r["stop"];
      const auto take = [&](const nlohmann::json& s) {
        if (!s.is_string() || s.get<std::string>().empty()) {
          throw fail(line, "'stop' must be a non-empty string or a list of them, got " + s.dump());
        }
        q.stop.push_back(s.get<std::string>());
      };
      if (v.is_array()) {
        for (const nlohmann::json& s : v) take(s);
      } else {
        take(v);
      }
    }
    if (r.contains("ignore_eos")) {
      if (!r["ignore_eos"].is_boolean()) throw fail(line, "'ignore_eos' must be true or false");
      q.ignore_eos = r["ignore_eos"].get<bool>();
    }
    if (r.contains("images")) {
      const nlohmann::json& v = r["images"];
      if (!v.is_array()) throw fail(line, "'images' must be a list of image file paths");
      for (const nlohmann::json& p : v) {
        if (!p.is_string() || p.get<std::string>().empty()) throw fail(line, "'images' must be a list of image file paths");
        q.images.push_back(media_path(p.get<std::string>()));
      }
    }
    if (r.contains("audio")) {
      if (!r["audio"].is_string() || r["audio"].get<std::string>().empty()) {
        throw fail(line, "'audio' must be the path of an audio file");
      }
      q.audio = media_path(r["audio"].get<std::string>());
    }
    out.push_back(std::move(q));
  }
  if (in.bad()) throw RunError(RunError::Code::kUsage, "--requests " + path + ": read error");
  if (out.empty()) throw RunError(RunError::Code::kUsage, "--requests " + path + ": no request in the file");
  return out;
}

std::vector<int64_t> read_eos_token_ids(const std::string& model_dir) {
  for (const char* name : {"generation_config.json", "config.json"}) {
    const std::filesystem::path file = std::filesystem::path(model_dir) / name;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) continue;
    std::string error;
    const std::optional<std::string> text = read_input_file(file.string(), kMaxConfigBytes, name, &error);
    if (!text) throw RunError(RunError::Code::kUsage, file.string() + ": " + error);
    nlohmann::json j;
    try {
      j = parse_json_limited(*text);
    } catch (const std::exception& e) {
      throw RunError(RunError::Code::kInvalid, file.string() + ": not valid JSON: " + e.what());
    }
    if (!j.is_object() || !j.contains("eos_token_id") || j["eos_token_id"].is_null()) continue;
    const nlohmann::json& v = j["eos_token_id"];
    std::vector<int64_t> ids;
    for (const nlohmann::json& e : v.is_array() ? v : nlohmann::json::array({v})) {
      if (!e.is_number_integer()) {
        throw RunError(RunError::Code::kInvalid, file.string() + ": eos_token_id must be an id or a list of ids");
      }
      ids.push_back(e.get<int64_t>());
    }
    return ids;
  }
  return {};
}

std::vector<int64_t> finish_tokens(const std::vector<int64_t>& generated, const Request& request,
                                   const std::vector<int64_t>& eos_ids, std::string& reason) {
  const size_t limit = std::min<size_t>(generated.size(), static_cast<size_t>(request.max_tokens));
  for (size_t i = 0; i < limit; ++i) {
    if (!request.ignore_eos && std::find(eos_ids.begin(), eos_ids.end(), generated[i]) != eos_ids.end()) {
      reason = "eos";
      return std::vector<int64_t>(generated.begin(), generated.begin() + static_cast<std::ptrdiff_t>(i) + 1);
    }
  }
  reason = "length";
  return std::vector<int64_t>(generated.begin(), generated.begin() + static_cast<std::ptrdiff_t>(limit));
}

std::string finish_text(const std::string& text, const Request& request, std::string& reason) {
  size_t first = std::string::npos;
  for (const std::string& s : request.stop) first = std::min(first, text.find(s));
  if (first == std::string::npos) return text;
  reason = "stop";
  return text.substr(0, first);
}

}  // namespace shardplan
