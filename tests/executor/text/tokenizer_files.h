// Test helpers: small tokenizer.json documents written to fresh temporary folders.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace shardplan::testing {

// A fresh folder under $TMPDIR (or /tmp).
inline std::string make_temp_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp ? tmp : "/tmp") + "/shardplan_text_XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) std::abort();
  return pattern;
}

// Writes DIR/tokenizer.json (and each extra file by name) and returns DIR.
inline std::string write_tokenizer(const nlohmann::json& tokenizer,
                                   const std::map<std::string, std::string>& extra = {}) {
  const std::string dir = make_temp_dir();
  std::ofstream(dir + "/tokenizer.json") << tokenizer.dump();
  for (const auto& [name, text] : extra) std::ofstream(dir + "/" + name) << text;
  return dir;
}

// A tokenizer.json whose model is a BPE over {<unk> a b c ab bc abc <0x41> <0x42> <0xC3> <0xA9>}
// with `merges`; everything else null. Tests set the other fields.
inline nlohmann::json tiny_bpe(const nlohmann::json& merges = nlohmann::json::array({"a b", "ab c"})) {
  return nlohmann::json{{"version", "1.0"},
                        {"added_tokens", nlohmann::json::array()},
                        {"normalizer", nullptr},
                        {"pre_tokenizer", nullptr},
                        {"post_processor", nullptr},
                        {"decoder", nullptr},
                        {"model",
                         {{"type", "BPE"},
                          {"dropout", nullptr},
                          {"unk_token", "<unk>"},
                          {"fuse_unk", true},
                          {"byte_fallback", true},
                          {"ignore_merges", false},
                          {"vocab",
                           {{"<unk>", 0},
                            {"a", 1},
                            {"b", 2},
                            {"c", 3},
                            {"ab", 4},
                            {"bc", 5},
                            {"abc", 6},
                            {"<0x41>", 7},
                            {"<0x42>", 8},
                            {"<0xC3>", 9},
                            {"<0xA9>", 10}}},
                          {"merges", merges}}}};
}

}  // namespace shardplan::testing
