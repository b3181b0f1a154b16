// Reading tokenizer.json's fields with errors that name their path (see json_fields.h).
#include "executor/text/json_fields.h"

#include "executor/text/tokenizer_error.h"
#include "executor/text/utf8.h"

namespace shardplan {
namespace {

std::string child(const std::string& path, const char* key) { return path.empty() ? key : path + "." + key; }

}  // namespace

const nlohmann::json& json_member(const nlohmann::json& obj, const char* key, const std::string& path) {
  if (!obj.is_object()) throw_malformed(path, std::string("expected an object, got ") + obj.type_name());
  const auto it = obj.find(key);
  if (it == obj.end()) throw_malformed(child(path, key), "missing");
  return *it;
}

std::string json_string(const nlohmann::json& obj, const char* key, const std::string& path) {
  const nlohmann::json& v = json_member(obj, key, path);
  if (!v.is_string()) throw_malformed(child(path, key), std::string("expected a string, got ") + v.type_name());
  return v.get<std::string>();
}

std::optional<std::string> json_optional_string(const nlohmann::json& obj, const char* key, const std::string& path) {
  if (!obj.is_object()) throw_malformed(path, std::string("expected an object, got ") + obj.type_name());
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) throw_malformed(child(path, key), std::string("expected a string, got ") + it->type_name());
  return it->get<std::string>();
}

bool json_bool(const nlohmann::json& obj, const char* key, const std::string& path, bool fallback) {
  if (!obj.is_object()) throw_malformed(path, std::string("expected an object, got ") + obj.type_name());
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) throw_malformed(child(path, key), std::string("expected a boolean, got ") + it->type_name());
  return it->get<bool>();
}

int64_t json_uint(const nlohmann::json& obj, const char* key, const std::string& path, int64_t fallback) {
  if (!obj.is_object()) throw_malformed(path, std::string("expected an object, got ") + obj.type_name());
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!json_is_index(*it) || it->get<uint64_t>() > (uint64_t{1} << 62)) {
    throw_malformed(child(path, key), std::string("expected a non-negative integer, got ") + it->dump());
  }
  return static_cast<int64_t>(it->get<uint64_t>());
}

char32_t json_char(const nlohmann::json& obj, const char* key, const std::string& path) {
  const std::string s = json_string(obj, key, path);
  size_t pos = 0;
  if (s.empty() || (next_code_point(s, pos), pos != s.size())) {
    throw_malformed(child(path, key), "expected one character, got '" + s + "'");
  }
  pos = 0;
  return next_code_point(s, pos);
}

bool json_is_index(const nlohmann::json& value) {
  return value.is_number_unsigned() || (value.is_number_integer() && value.get<int64_t>() >= 0);
}

std::string json_type(const nlohmann::json& obj, const std::string& path) { return json_string(obj, "type", path); }

}  // namespace shardplan
