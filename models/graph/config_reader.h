// Reads the fields of one object of a Hugging Face config.json the way transformers does: a field
// that is absent (or null) takes the class default, which is written back into the object so that
// ModelGraph::config shows every size that was used. Every bad value is a ConfigError.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace shardplan {

// The largest sizes a config may give (ConfigReader::size): a dimension, a count of layers
// (keys containing "layers"), a count of experts (keys containing "experts").
inline constexpr int64_t kMaxConfigSize = int64_t{1} << 24;
inline constexpr int64_t kMaxConfigLayers = 4096;
inline constexpr int64_t kMaxConfigExperts = 65536;

class ConfigReader {
 public:
  // `object` must outlive the reader and is modified in place (defaults are written into it).
  // `where` names the object in messages and in `defaulted`: "" for the top level, "text_config"
  // for a nested one. Every field that takes a default is appended to `defaulted`.
  ConfigReader(nlohmann::json& object, std::string where, std::vector<std::string>* defaulted);

  // The object read (with the defaults written so far).
  const nlohmann::json& object() const { return object_; }

  // "text_config.hidden_size" for key "hidden_size" (just the key at the top level).
  std::string field(const std::string& key) const;

  bool has(const std::string& key) const;        // present and not null
  bool is_null(const std::string& key) const;    // present and null

  // A size: an integer >= 1, or the default when absent or null.
  int64_t size(const std::string& key, int64_t fallback);
  // A size with no default of its own (head_dim): nullopt when absent or null, nothing written.
  std::optional<int64_t> optional_size(const std::string& key);
  bool flag(const std::string& key, bool fallback);
  double number(const std::string& key, double fallback);
  std::string text(const std::string& key, const std::string& fallback);

  // Writes a value the caller derived (head_dim = hidden_size / heads) and records it as defaulted.
  void set_derived(const std::string& key, const nlohmann::json& value);

  // The nested object `key`; an empty one is created (and recorded as defaulted) when absent or
  // null. Throws when it is something else.
  nlohmann::json& child(const std::string& key);

 private:
  void record_default(const std::string& key, const nlohmann::json& value);

  nlohmann::json& object_;
  std::string where_;
  std::vector<std::string>* defaulted_;
};

// `value` as JSON text for messages, cut short when long.
std::string describe_json(const nlohmann::json& value);

}  // namespace shardplan
