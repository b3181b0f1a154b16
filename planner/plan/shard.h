// Where every checkpoint tensor lives: its layout over the mesh and the exact slice each rank
// loads. Slices are computed on demand from a compact description, so a plan over 256 ranks and
// 50k expert tensors stays small.
//
// Worked example, Llama-3-8B k_proj.weight [1024, 4096] (8 KV heads of 128 rows), tensor over
// [tp] on {dp: 2, tp: 4}: layout [{tp}, {}]; rank 0 and 4 load rows [0, 256), rank 1 and 5
// [256, 512), ... With tp = 16 (> 8 KV heads) each head is replicated on two ranks: group rank r
// holds head r / 2, so ranks 0 and 1 both load rows [0, 128).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/graph/model_graph.h"
#include "planner/plan/layout.h"
#include "planner/plan/mesh.h"
#include "planner/spec/spec.h"

namespace shardplan {

struct ShardSlice {
  std::vector<int64_t> offset;
  std::vector<int64_t> shape;  // a 0 somewhere: the rank holds none of the tensor
  int64_t numel() const;
};

struct ParamPlan {
  const Param* param = nullptr;
  int module = -1;                    // index into Plan::modules
  TensorLayout layout;
  // Split of one dimension over a group (tensor mode): split_dim < 0 when whole.
  int split_dim = -1;
  std::vector<std::string> split_axes;
  int64_t units = 0;                  // heads / rows making up the split dimension
  // Expert placement (moe in expert mode): the tensor lives whole on the ranks whose group rank
  // over expert_axes owns its expert; experts go to ranks in contiguous blocks (group rank r of
  // g owns experts [r*E/g, (r+1)*E/g)).
  std::vector<std::string> expert_axes;
  int64_t owner_group_rank = -1;
};

// The ParamPlan of `param` for a module assigned `mode` over `axes`.
// `experts`: the module's expert count (moe), used for expert placement.
ParamPlan plan_param(const Param& param, int module, ParallelMode mode,
                     const std::vector<std::string>& axes, int64_t experts, const Mesh& mesh);

ShardSlice shard_for_rank(const ParamPlan& p, const Mesh& mesh, int64_t rank);

// How many ranks hold each element (every element of a tensor is held equally often).
int64_t replication_factor(const ParamPlan& p, const Mesh& mesh);

}  // namespace shardplan
