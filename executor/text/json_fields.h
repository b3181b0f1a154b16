// Reading tokenizer.json's fields: each accessor names the JSON path of what is wrong
// ("pre_tokenizer.pretokenizers[1].behavior: expected a string, got null").
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace shardplan {

// The member `key` of the object `obj` at `path`; throws when `obj` is no object or lacks it.
const nlohmann::json& json_member(const nlohmann::json& obj, const char* key, const std::string& path);
// A required string / an optional one (missing or null: nullopt).
std::string json_string(const nlohmann::json& obj, const char* key, const std::string& path);
std::optional<std::string> json_optional_string(const nlohmann::json& obj, const char* key, const std::string& path);
// An optional boolean: missing or null gives `fallback`.
bool json_bool(const nlohmann::json& obj, const char* key, const std::string& path, bool fallback);
// An optional non-negative integer: missing or null gives `fallback`.
int64_t json_uint(const nlohmann::json& obj, const char* key, const std::string& path, int64_t fallback);
// A string that holds exactly one character (Metaspace's replacement, Strip's content).
char32_t json_char(const nlohmann::json& obj, const char* key, const std::string& path);
// Whether `value` is a non-negative integer (parsed JSON has them unsigned, built JSON signed).
bool json_is_index(const nlohmann::json& value);
// The "type" of a component object.
std::string json_type(const nlohmann::json& obj, const std::string& path);

}  // namespace shardplan
