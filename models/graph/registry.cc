// Dispatch from config.json's model_type to the family that builds its ModelGraph.
#include "models/graph/registry.h"

#include "base/input_file.h"

#include <fstream>
#include <sstream>

#include "models/graph/config_reader.h"
#include "models/graph/family.h"

namespace shardplan {
namespace {

std::string supported_list() {
  std::string list;
  for (const std::string& type : supported_model_types()) {
    if (!list.empty()) list += ", ";
    list += type;
  }
  return list;
}

// The dtype named by `object`'s "dtype" (transformers 5) or "torch_dtype" (transformers 4) field.
std::optional<DType> dtype_field(const nlohmann::json& object, const std::string& where) {
  for (const char* key : {"dtype", "torch_dtype"}) {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) continue;
    if (!it->is_string()) {
      throw ConfigError(where + key + " must be a string, got " + describe_json(*it));
    }
    std::optional<DType> dtype = parse_dtype(it->get<std::string>());
    if (!dtype) {
      throw ConfigError(where + key + " '" + it->get<std::string>() +
                        "' is not supported; supported dtypes: float32, bfloat16, float16");
    }
    return dtype;
  }
  return std::nullopt;
}

// The config's own dtype, else its text_config's (llava), else float32: what transformers loads
// a model in when neither the config nor the caller names one.
DType read_config_dtype(const nlohmann::json& config) {
  if (std::optional<DType> dtype = dtype_field(config, "")) return *dtype;
  auto text = config.find("text_config");
  if (text != config.end() && text->is_object()) {
    if (std::optional<DType> dtype = dtype_field(*text, "text_config.")) return *dtype;
  }
  return DType::kFloat32;
}

}  // namespace

const std::vector<std::string>& supported_model_types() {
  static const std::vector<std::string> types = [] {
    std::vector<std::string> all;
    for (const Family* family : family_table()) {
      all.insert(all.end(), family->model_types.begin(), family->model_types.end());
    }
    return all;
  }();
  return types;
}

ModelGraph build_model_graph(const nlohmann::json& config) {
  if (!config.is_object()) {
    throw ConfigError("the config must be a JSON object, got " + describe_json(config));
  }
  auto it = config.find("model_type");
  if (it == config.end() || !it->is_string()) {
    throw ConfigError("the config has no string \"model_type\"; supported model types: " +
                      supported_list());
  }
  const std::string model_type = it->get<std::string>();
  const Family* family = family_of_model_type(model_type);
  if (!family) {
    throw ConfigError("model_type '" + model_type +
                      "' is not supported; supported model types: " + supported_list());
  }
  ModelGraph graph = family->build_graph(config);
  graph.config_dtype = read_config_dtype(graph.config);
  // Every tensor's and the model's element count must fit the 64-bit sizes the planner computes
  // with (counted in double here, so the check itself cannot overflow).
  double total = 0;
  for (const Module& m : graph.modules) {
    for (const Param& p : m.params) {
      double n = 1;
      for (int64_t d : p.shape) n *= static_cast<double>(d);
      total += n;
      if (n > 0x1p60 || total > 0x1p60) {
        throw ConfigError("the model's tensors hold more than 2^60 elements (" + p.name +
                          " and before it): its sizes are beyond what can be planned");
      }
    }
  }
  return graph;
}

ModelGraph load_model_graph(const std::string& config_path) {
  std::string error;
  const std::optional<std::string> text = read_input_file(config_path, kMaxConfigBytes, "a config", &error);
  if (!text) throw ConfigError(config_path + ": cannot read the model config: " + error);
  return model_graph_from_text(*text, config_path);
}

ModelGraph model_graph_from_text(const std::string& text, const std::string& where) {
  nlohmann::json config;
  try {
    config = parse_json_limited(text);
  } catch (const std::exception& e) {
    throw ConfigError(where + ": not valid JSON: " + e.what());
  }
  try {
    return build_model_graph(config);
  } catch (const ConfigError& e) {
    throw ConfigError(where + ": " + e.what());
  }
}

}  // namespace shardplan
