// Derived communication (spec-format.md §3): the planner follows the layout of every activation
// stream over every mesh axis through the modules in execution order, and wherever a module
// needs its input in another layout than the one it gets, the one transition table below names
// the collective. Nothing else in the project decides which collective runs.
#pragma once

#include <optional>
#include <vector>

#include "planner/plan/layout.h"
#include "planner/plan/plan.h"

namespace shardplan {

// The transition table, one mesh axis at a time:
//   partial     -> replicated : all_reduce
//   partial     -> batch      : reduce_scatter
//   batch       -> replicated : all_gather
//   vocab       -> replicated : all_gather      (vocabulary-split logits)
//   replicated  -> batch      : none (each rank keeps its slice)
//   same state                : none
// Batch-split tokens into an `expert` module and back are all_to_all pairs; they are emitted by
// derive_collectives around the module rather than by this table.
std::optional<CollectiveOp> transition_op(AxisState from, AxisState to);

// Fills plan.comms and every ModulePlan's input/output layouts. Needs plan.modules and plan.mesh.
void derive_collectives(Plan& plan);

// Bytes one rank sends for `op` over a group of g ranks when it holds `local_bytes` before the op
// (ring algorithms): all_reduce 2(g-1)/g*S, reduce_scatter (g-1)/g*S, all_gather (g-1)*S,
// all_to_all (g-1)/g*S.
int64_t bytes_sent(CollectiveOp op, int64_t g, int64_t local_bytes);

}  // namespace shardplan
