// Which mode and axes each module of the model gets: the last rule that matches it, else the
// defaults. Encoders are assigned as one unit: kind selectors never match their inner blocks.
#pragma once

#include <string>
#include <vector>

#include "models/graph/model_graph.h"
#include "planner/spec/spec.h"

namespace shardplan {

struct ModuleAssignment {
  const Module* module = nullptr;  // into the ModelGraph's modules
  ParallelMode mode = ParallelMode::kReplicate;
  std::vector<std::string> axes;   // as listed in the rule (the mode acts over their product)
  int rule = -1;                   // index into Spec::rules; -1: the defaults
  // A MoE with a shared expert: the shared expert's mode and axes (the rule's `shared_expert`;
  // by default tensor over the same axes under tensor, replicate otherwise).
  bool has_shared_expert = false;
  ParallelMode shared_mode = ParallelMode::kReplicate;
  std::vector<std::string> shared_axes;
};

// True when `rule` selects `module` (both kind and path must match where given).
bool rule_matches(const RuleSpec& rule, const Module& module);

// One entry per module of graph.modules, in the same order. Rules that are not well formed are
// skipped.
std::vector<ModuleAssignment> assign_modules(const Spec& spec, const ModelGraph& graph);

// Is `mode` defined for `kind` (spec-format.md §2)?
bool mode_allowed(ModuleKind kind, ParallelMode mode);
std::vector<ParallelMode> allowed_modes(ModuleKind kind);

}  // namespace shardplan
