// The plan: what `planner plan` prints and the executor binds. Built from a checked spec:
// per-module modes, every tensor's layout and slices, the derived collectives in execution order,
// and memory and FLOPs per rank.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/graph/model_graph.h"
#include "planner/plan/layout.h"
#include "planner/plan/mesh.h"
#include "planner/plan/shard.h"
#include "planner/spec/spec.h"
#include "planner/spec/spec_check.h"

namespace shardplan {

struct ModulePlan {
  const Module* module = nullptr;
  ParallelMode mode = ParallelMode::kReplicate;
  std::vector<std::string> axes;
  int rule = -1;         // index into Spec::rules, -1: defaults
  int rule_line = 0;     // the rule's line in the spec (0: defaults)
  int64_t weight_bytes_max = 0;  // largest per-rank weight bytes of this module
  // The layout of its input stream as it computes (after any collective in front of it), and of
  // its output; filled by derive_collectives.
  ActivationLayout input_layout, output_layout;
};

enum class CollectiveOp { kAllReduce, kAllGather, kReduceScatter, kAllToAll };
const char* to_string(CollectiveOp op);

struct Collective {
  std::string after;     // the module whose output it transforms
  std::string before;    // the module that consumes the result ("output": the final logits)
  CollectiveOp op = CollectiveOp::kAllReduce;
  std::vector<std::string> axes;
  std::vector<RankGroup> groups;
  int64_t bytes_prefill = 0;   // bytes each rank sends, prefill of the whole workload
  int64_t bytes_decode = 0;    // bytes each rank sends, one decode step
  std::string purpose;   // "" or "dispatch" / "combine" for all_to_all
  Stream stream = Stream::kText;
};

struct RankCost {
  int64_t weight_bytes = 0;
  int64_t kv_cache_bytes = 0;
  double flops_prefill = 0;
  double flops_decode = 0;
};

struct Plan {
  CheckedSpec checked;              // spec, model graph, assignment (the plan points into it)
  Mesh mesh;
  std::vector<ModulePlan> modules;  // one per graph module, execution order
  std::vector<ParamPlan> params;    // every checkpoint tensor, in module order
  std::vector<Collective> comms;    // execution order of one forward pass
  std::vector<RankCost> ranks;      // indexed by rank

  const Spec& spec() const { return checked.spec; }
  const ModelGraph& graph() const { return checked.graph; }
  int64_t world_size() const { return mesh.world_size(); }
};

// NOTE: the plan keeps pointers into `checked.graph`; Plan is therefore built in place and
// handed around by reference or unique_ptr, never copied.
std::unique_ptr<Plan> build_plan(CheckedSpec checked);

}  // namespace shardplan
