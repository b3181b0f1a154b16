// build_plan: modules -> tensor layouts -> derived collectives -> costs.
#include "planner/plan/plan.h"

#include "planner/plan/collectives.h"
#include "planner/plan/cost.h"

namespace shardplan {

const char* to_string(CollectiveOp op) {
  switch (op) {
    case CollectiveOp::kAllReduce: return "all_reduce";
    case CollectiveOp::kAllGather: return "all_gather";
    case CollectiveOp::kReduceScatter: return "reduce_scatter";
    case CollectiveOp::kAllToAll: return "all_to_all";
  }
  return "?";
}

const char* to_string(CollectivePurpose purpose) {
  switch (purpose) {
    case CollectivePurpose::kBetweenModules: return "between_modules";
    case CollectivePurpose::kAfterEncoderBlock: return "after_encoder_block";
    case CollectivePurpose::kMoeDispatch: return "moe_dispatch";
    case CollectivePurpose::kMoeCombine: return "moe_combine";
  }
  return "?";
}

const char* short_purpose(CollectivePurpose purpose) {
  switch (purpose) {
    case CollectivePurpose::kMoeDispatch: return "dispatch";
    case CollectivePurpose::kMoeCombine: return "combine";
    default: return "";
  }
}

const char* to_string(CollectiveSplit split) {
  switch (split) {
    case CollectiveSplit::kHidden: return "hidden";
    case CollectiveSplit::kRequests: return "requests";
    case CollectiveSplit::kItems: return "items";
    case CollectiveSplit::kVocabulary: return "vocabulary";
  }
  return "?";
}

std::unique_ptr<Plan> build_plan(CheckedSpec checked) {
  auto plan = std::make_unique<Plan>();
  plan->checked = std::move(checked);
  const Spec& spec = plan->spec();
  std::vector<MeshAxis> axes;
  for (const auto& a : spec.mesh) axes.push_back({a.name, a.size});
  plan->mesh = Mesh(std::move(axes));

  // NOTE: the assignment was made against checked.graph before the move; std::vector moves keep
  // element addresses, so its Module pointers still point into plan->checked.graph.
  for (const ModuleAssignment& a : plan->checked.assignment) {
    ModulePlan mp;
    mp.module = a.module;
    mp.mode = a.mode;
    mp.axes = a.axes;
    mp.rule = a.rule;
    mp.rule_line = a.rule >= 0 ? spec.rules[a.rule].pos.line : 0;
    mp.has_shared_expert = a.has_shared_expert;
    mp.shared_mode = a.shared_mode;
    mp.shared_axes = a.shared_axes;
    plan->modules.push_back(std::move(mp));
  }
  for (size_t i = 0; i < plan->modules.size(); ++i) {
    ModulePlan& mp = plan->modules[i];
    for (const Param& p : mp.module->params) {
      // NOTE: the shared expert's tensors take the shared expert's mode, not the module's.
      plan->params.push_back(p.shared_expert
                                 ? plan_param(p, static_cast<int>(i), mp.shared_mode, mp.shared_axes, 0, plan->mesh)
                                 : plan_param(p, static_cast<int>(i), mp.mode, mp.axes, mp.module->dims.experts,
                                              plan->mesh));
      const ParamPlan& pp = plan->params.back();
      if (pp.expert_axes.empty()) continue;
      if (mp.expert_owners.empty()) mp.expert_owners.assign(static_cast<size_t>(mp.module->dims.experts), -1);
      mp.expert_owners.at(static_cast<size_t>(p.expert)) = pp.owner_group_rank;
    }
  }
  derive_collectives(*plan);
  compute_costs(*plan);
  return plan;
}

}  // namespace shardplan
