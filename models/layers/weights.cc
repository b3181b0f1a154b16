// Role-based weight lookup (see weights.h).
#include "models/layers/weights.h"

#include <stdexcept>
#include <string>

namespace shardplan {

ModuleWeights::ModuleWeights(const Module& module, const TensorShards& shards) : module_(module), shards_(shards) {}

const TensorShard* ModuleWeights::find(const ParamKey& key) const {
  const Param* match = nullptr;
  for (const Param& p : module_.params) {
    if (p.role != key.role || p.bias != key.bias || p.expert != key.expert || p.shared_expert != key.shared_expert) {
      continue;
    }
    if (match) {
      throw std::logic_error("module " + module_.path + " declares two tensors of role " + to_string(key.role) + ": " +
                             match->name + " and " + p.name);
    }
    match = &p;
  }
  if (!match) return nullptr;
  auto it = shards_.find(match->name);
  return it == shards_.end() ? nullptr : &it->second;
}

const TensorShard& ModuleWeights::at(const ParamKey& key) const {
  const TensorShard* shard = find(key);
  if (!shard) {
    throw std::invalid_argument("module " + module_.path + ": the " + (key.bias ? "bias" : "weight") + " of role " +
                                to_string(key.role) + (key.expert >= 0 ? " of expert " + std::to_string(key.expert) : "") +
                                " was not loaded");
  }
  return *shard;
}

at::Tensor ModuleWeights::bias(ParamRole role) const {
  const TensorShard* shard = find({role, /*bias=*/true});
  return shard ? shard->tensor : at::Tensor();
}

}  // namespace shardplan
