// A module's weights on one rank, looked up by parameter role (models/graph/model_graph.h), never
// by tensor name: the graph declares what each tensor is where it adds it, and every family's
// forward binds through this.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "models/forward/tensor_shard.h"
#include "models/graph/model_graph.h"

namespace shardplan {

// Which tensor of a module: its role, weight or bias, the expert it belongs to (-1: none) and
// whether it is part of the shared expert.
struct ParamKey {
  ParamRole role;
  bool bias = false;
  int expert = -1;
  bool shared_expert = false;
};

class ModuleWeights {
 public:
  // Every param of `module` with its shard in `shards` (the ones the rank does not hold, other
  // ranks' experts, are absent). `module` and `shards` must outlive this.
  ModuleWeights(const Module& module, const TensorShards& shards);

  // The rank's shard of the tensor `key` names; nullptr when the graph has no such tensor (an
  // absent bias) or the rank does not hold it (another rank's expert). std::logic_error when
  // two tensors of the module match (a graph that declares a role twice).
  const TensorShard* find(const ParamKey& key) const;
  // As find, but the tensor must exist and be held: std::invalid_argument naming the module.
  const TensorShard& at(const ParamKey& key) const;

  at::Tensor weight(ParamRole role) const { return at({role}).tensor; }
  // Undefined when the graph has no bias of `role`.
  at::Tensor bias(ParamRole role) const;

  const Module& module() const { return module_; }

 private:
  const Module& module_;
  const TensorShards& shards_;
};

}  // namespace shardplan
