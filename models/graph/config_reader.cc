// Field access with transformers' defaults for config.json objects.
#include "models/graph/config_reader.h"

#include <cmath>

#include "models/graph/model_graph.h"

namespace shardplan {

std::string describe_json(const nlohmann::json& value) {
  std::string text = value.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

ConfigReader::ConfigReader(nlohmann::json& object, std::string where,
                           std::vector<std::string>* defaulted)
    : object_(object), where_(std::move(where)), defaulted_(defaulted) {
  if (!object_.is_object()) {
    throw ConfigError((where_.empty() ? std::string("the config") : where_) +
                      " must be a JSON object, got " + describe_json(object_));
  }
}

std::string ConfigReader::field(const std::string& key) const {
  return where_.empty() ? key : where_ + "." + key;
}

bool ConfigReader::has(const std::string& key) const {
  auto it = object_.find(key);
  return it != object_.end() && !it->is_null();
}

bool ConfigReader::is_null(const std::string& key) const {
  auto it = object_.find(key);
  return it != object_.end() && it->is_null();
}

void ConfigReader::record_default(const std::string& key, const nlohmann::json& value) {
  object_[key] = value;
  if (defaulted_ != nullptr) defaulted_->push_back(field(key));
}

int64_t ConfigReader::size(const std::string& key, int64_t fallback) {
  if (!has(key)) {
    record_default(key, fallback);
    return fallback;
  }
  const nlohmann::json& value = object_.at(key);
  // NOTE: booleans are not numbers in nlohmann::json, and 4096.0 is rejected as transformers'
  // strict configs reject a float where an int is declared.
  if (!value.is_number_integer() || value.get<int64_t>() < 1) {
    throw ConfigError(field(key) + " must be an integer >= 1, got " + describe_json(value));
  }
  // Limits (docs/reliability.md): no real model comes near them, and within them no size
  // product the planner forms overflows 64 bits; layers and experts are what the module tree
  // grows with, so theirs are lower.
  const int64_t v = value.get<int64_t>();
  const bool layers = key.find("layers") != std::string::npos;
  const bool experts = key.find("experts") != std::string::npos;
  const int64_t limit = layers ? kMaxConfigLayers : experts ? kMaxConfigExperts : kMaxConfigSize;
  if (v > limit) {
    throw ConfigError(field(key) + " " + std::to_string(v) + " is more than the " + std::to_string(limit) + " " +
                      (layers ? "layers" : experts ? "experts" : "a size") + " a config may give");
  }
  return v;
}

std::optional<int64_t> ConfigReader::optional_size(const std::string& key) {
  if (!has(key)) return std::nullopt;
  return size(key, 0);
}

bool ConfigReader::flag(const std::string& key, bool fallback) {
  if (!has(key)) {
    record_default(key, fallback);
    return fallback;
  }
  const nlohmann::json& value = object_.at(key);
  if (!value.is_boolean()) {
    throw ConfigError(field(key) + " must be true or false, got " + describe_json(value));
  }
  return value.get<bool>();
}

double ConfigReader::number(const std::string& key, double fallback) {
  if (!has(key)) {
    record_default(key, fallback);
    return fallback;
  }
  const nlohmann::json& value = object_.at(key);
  if (!value.is_number() || !std::isfinite(value.get<double>())) {
    throw ConfigError(field(key) + " must be a number, got " + describe_json(value));
  }
  return value.get<double>();
}

std::string ConfigReader::text(const std::string& key, const std::string& fallback) {
  if (!has(key)) {
    record_default(key, fallback);
    return fallback;
  }
  const nlohmann::json& value = object_.at(key);
  if (!value.is_string()) {
    throw ConfigError(field(key) + " must be a string, got " + describe_json(value));
  }
  return value.get<std::string>();
}

void ConfigReader::set_derived(const std::string& key, const nlohmann::json& value) {
  record_default(key, value);
}

nlohmann::json& ConfigReader::child(const std::string& key) {
  if (!has(key)) record_default(key, nlohmann::json::object());
  nlohmann::json& value = object_.at(key);
  if (!value.is_object()) {
    throw ConfigError(field(key) + " must be a JSON object, got " + describe_json(value));
  }
  return value;
}

}  // namespace shardplan
