// Per-tensor layouts and per-rank slices (see shard.h for a worked example).
#include "planner/plan/shard.h"

namespace shardplan {

int64_t ShardSlice::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

ParamPlan plan_param(const Param& param, int module, ParallelMode mode,
                     const std::vector<std::string>& axes, int64_t experts, const Mesh& mesh) {
  ParamPlan p;
  p.param = &param;
  p.module = module;
  p.layout.dims.assign(param.shape.size(), {});
  const int64_t g = mesh.group_size(axes);
  if (mode == ParallelMode::kTensor && param.tensor_split.type == TensorSplit::Type::kUnits && g > 1) {
    p.split_dim = param.tensor_split.dim;
    p.split_axes = axes;
    p.units = param.tensor_split.units;
    p.layout.dims[p.split_dim] = axes;
  }
  if (mode == ParallelMode::kExpert && param.expert >= 0 && g > 1) {
    p.expert_axes = axes;
    p.owner_group_rank = param.expert / (experts / g);
  }
  return p;
}

ShardSlice shard_for_rank(const ParamPlan& p, const Mesh& mesh, int64_t rank) {
  const auto& shape = p.param->shape;
  ShardSlice s{std::vector<int64_t>(shape.size(), 0), shape};
  if (!p.expert_axes.empty() && mesh.group_rank(rank, p.expert_axes) != p.owner_group_rank) {
    if (!s.shape.empty()) s.shape[0] = 0;
    return s;
  }
  if (p.split_dim < 0) return s;
  const int64_t g = mesh.group_size(p.split_axes);
  const int64_t r = mesh.group_rank(rank, p.split_axes);
  const int64_t unit_size = shape[p.split_dim] / p.units;
  if (g <= p.units) {
    const int64_t per_rank = p.units / g;
    s.offset[p.split_dim] = r * per_rank * unit_size;
    s.shape[p.split_dim] = per_rank * unit_size;
  } else {
    // More ranks than units (KV heads): each unit is replicated on g / units ranks.
    const int64_t unit = r / (g / p.units);
    s.offset[p.split_dim] = unit * unit_size;
    s.shape[p.split_dim] = unit_size;
  }
  return s;
}

int64_t replication_factor(const ParamPlan& p, const Mesh& mesh) {
  int64_t holders = mesh.world_size();
  if (!p.expert_axes.empty()) holders /= mesh.group_size(p.expert_axes);
  if (p.split_dim >= 0) {
    const int64_t g = mesh.group_size(p.split_axes);
    holders /= g;
    if (g > p.units) holders *= g / p.units;
  }
  return holders;
}

}  // namespace shardplan
