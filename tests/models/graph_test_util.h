// Helpers shared by the model-family tests: load a config from models/configs/, find modules and
// params by name, spell out a param's split in one comparable string.
#pragma once

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "models/graph/model_graph.h"
#include "models/graph/registry.h"

namespace shardplan::testing {

inline std::string source_path(const std::string& relative) {
  return std::string(SHARDPLAN_SOURCE_DIR) + "/" + relative;
}

// ModelGraph of models/configs/<name>.
inline ModelGraph load_config(const std::string& name) {
  return load_model_graph(source_path("models/configs/" + name));
}

inline const Module* find_module(const std::vector<Module>& modules, const std::string& path) {
  for (const Module& module : modules) {
    if (module.path == path) return &module;
  }
  return nullptr;
}

inline const Module& module_at(const ModelGraph& graph, const std::string& path) {
  const Module* module = find_module(graph.modules, path);
  if (module == nullptr) throw std::runtime_error("no module " + path);
  return *module;
}

inline const Param* find_param(const Module& module, const std::string& name) {
  for (const Param& param : module.params) {
    if (param.name == name) return &param;
  }
  return nullptr;
}

// "none" or "dim0/32" or "dim0/8 replicable"
inline std::string split_text(const TensorSplit& split) {
  if (split.type == TensorSplit::Type::kNone) return "none";
  std::string text = "dim" + std::to_string(split.dim) + "/" + std::to_string(split.units);
  if (split.replicable) text += " replicable";
  return text;
}

inline std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(shape[i]);
  }
  return text + "]";
}

// One param spelled out: "name [4096, 4096] dim0/32".
inline std::string param_text(const Param& param) {
  std::string text =
      param.name + " " + shape_text(param.shape) + " " + split_text(param.tensor_split);
  if (param.expert >= 0) text += " expert " + std::to_string(param.expert);
  return text;
}

inline std::vector<std::string> params_text(const Module& module) {
  std::vector<std::string> lines;
  for (const Param& param : module.params) lines.push_back(param_text(param));
  return lines;
}

inline std::vector<std::string> module_paths(const std::vector<Module>& modules) {
  std::vector<std::string> paths;
  for (const Module& module : modules) paths.push_back(module.path);
  return paths;
}

// Expects build_model_graph(config) to throw a ConfigError whose message contains every piece.
inline void expect_config_error(const nlohmann::json& config,
                                const std::vector<std::string>& pieces) {
  try {
    build_model_graph(config);
    ADD_FAILURE() << "no ConfigError for " << config.dump();
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    for (const std::string& piece : pieces) {
      EXPECT_NE(message.find(piece), std::string::npos)
          << "message '" << message << "' lacks '" << piece << "'";
    }
  }
}

}  // namespace shardplan::testing
