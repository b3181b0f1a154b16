// A checkpoint tensor as one rank holds it (libtorch): the slice the plan gave the rank, and where
// the slice starts in the whole tensor. The forward code of every family reads its weights so,
// through the lookups below.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/graph/model_graph.h"

namespace shardplan {

struct TensorShard {
  at::Tensor tensor;             // the slice, in the run's dtype, on the run's device
  std::vector<int64_t> offset;   // its first element in the whole tensor (all 0 when whole)
};

// By Hub tensor name.
using TensorShards = std::map<std::string, TensorShard>;

// The rank's shard of tensor `name`; std::invalid_argument when it was not loaded.
inline const TensorShard& shard_of(const TensorShards& shards, const std::string& name) {
  auto it = shards.find(name);
  if (it == shards.end()) throw std::invalid_argument("tensor '" + name + "' was not loaded");
  return it->second;
}
inline const at::Tensor& tensor_of(const TensorShards& shards, const std::string& name) {
  return shard_of(shards, name).tensor;
}
// Undefined when the checkpoint has no such tensor (an absent bias).
inline at::Tensor optional_tensor(const TensorShards& shards, const std::string& name) {
  auto it = shards.find(name);
  return it == shards.end() ? at::Tensor() : it->second.tensor;
}

// An integer size of a config.json object the model layer has completed (its defaults applied);
// ConfigError when it is missing.
inline int64_t size_of(const nlohmann::json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end() || !it->is_number_integer()) {
    throw ConfigError(std::string("config field '") + key + "' is missing (the model layer should have set it)");
  }
  return it->get<int64_t>();
}

}  // namespace shardplan
