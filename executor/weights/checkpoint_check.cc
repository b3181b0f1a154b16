// Checkpoint vs model graph: missing tensors and contradicting shapes.
#include "executor/weights/checkpoint_check.h"

#include <set>

#include <fmt/format.h>

namespace shardplan {

std::vector<const Param*> checkpoint_params(const ModelGraph& graph) {
  std::vector<const Param*> params;
  std::set<std::string> seen;
  for (const Module& module : graph.modules) {
    for (const Param& param : module.params) {
      if (seen.insert(param.name).second) params.push_back(&param);
    }
  }
  return params;
}

std::vector<std::string> find_checkpoint_mismatches(const Checkpoint& checkpoint, const ModelGraph& graph) {
  std::vector<std::string> problems;
  for (const Param* param : checkpoint_params(graph)) {
    std::optional<std::string> stored = checkpoint.resolve(param->name);
    if (!stored) {
      problems.push_back(fmt::format("checkpoint '{}': tensor '{}' is missing (the config needs shape {})",
                                     checkpoint.path(), param->name, shape_to_string(param->shape)));
      continue;
    }
    const TensorInfo& info = checkpoint.info(*stored);
    if (info.shape != param->shape) {
      const std::string as = *stored == param->name ? "" : fmt::format(" (as '{}')", *stored);
      problems.push_back(fmt::format("checkpoint '{}': tensor '{}'{} has shape {} in {}, the config gives {}",
                                     checkpoint.path(), param->name, as, shape_to_string(info.shape), info.file,
                                     shape_to_string(param->shape)));
    }
  }
  return problems;
}

void check_checkpoint_matches(const Checkpoint& checkpoint, const ModelGraph& graph) {
  std::vector<std::string> problems = find_checkpoint_mismatches(checkpoint, graph);
  if (problems.empty()) return;
  std::string message = fmt::format("checkpoint '{}' does not match the {} config ({} problem{}):",
                                    checkpoint.path(), graph.model_type, problems.size(),
                                    problems.size() == 1 ? "" : "s");
  for (const std::string& p : problems) message += "\n  " + p;
  throw WeightsError(WeightsError::Code::kInvalid, message);
}

}  // namespace shardplan
