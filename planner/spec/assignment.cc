// Rule resolution: the last matching rule wins.
#include "planner/spec/assignment.h"

#include <algorithm>

#include "planner/spec/glob.h"

namespace shardplan {

bool rule_matches(const RuleSpec& rule, const Module& module) {
  if (!rule.kinds.empty() &&
      std::find(rule.kinds.begin(), rule.kinds.end(), module.kind) == rule.kinds.end()) {
    return false;
  }
  if (rule.path && !glob_match(*rule.path, module.path)) return false;
  return true;
}

std::vector<ModuleAssignment> assign_modules(const Spec& spec, const ModelGraph& graph) {
  std::vector<ModuleAssignment> out;
  out.reserve(graph.modules.size());
  for (const Module& m : graph.modules) {
    ModuleAssignment a;
    a.module = &m;
    a.mode = spec.default_mode;
    a.axes = spec.default_axes;
    for (int i = static_cast<int>(spec.rules.size()) - 1; i >= 0; --i) {
      const RuleSpec& r = spec.rules[i];
      if (!r.well_formed || !rule_matches(r, m)) continue;
      a.mode = r.mode;
      a.axes = r.axes;
      a.rule = i;
      break;
    }
    if (m.kind == ModuleKind::kMoe && m.dims.shared_expert_intermediate > 0) {
      a.has_shared_expert = true;
      const RuleSpec* rule = a.rule >= 0 ? &spec.rules[a.rule] : nullptr;
      if (rule && rule->shared_expert) {
        a.shared_mode = rule->shared_expert->mode;
        a.shared_axes = rule->shared_expert->axes;
      } else if (a.mode == ParallelMode::kTensor) {
        a.shared_mode = ParallelMode::kTensor;
        a.shared_axes = a.axes;
      }
    }
    out.push_back(std::move(a));
  }
  return out;
}

std::vector<ParallelMode> allowed_modes(ModuleKind kind) {
  if (kind == ModuleKind::kMoe) {
    return {ParallelMode::kReplicate, ParallelMode::kTensor, ParallelMode::kData,
            ParallelMode::kExpert};
  }
  return {ParallelMode::kReplicate, ParallelMode::kTensor, ParallelMode::kData};
}

bool mode_allowed(ModuleKind kind, ParallelMode mode) {
  auto modes = allowed_modes(kind);
  return std::find(modes.begin(), modes.end(), mode) != modes.end();
}

}  // namespace shardplan
