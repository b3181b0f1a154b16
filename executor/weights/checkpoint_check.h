// Does a checkpoint hold what a model config needs? Every missing tensor and every shape that
// contradicts the config, reported together.
#pragma once

#include <string>
#include <vector>

#include "executor/weights/safetensors.h"
#include "models/graph/model_graph.h"

namespace shardplan {

// Checks, for every tensor of the graph (each name once; a tied lm_head has no tensor of its own):
//   - the checkpoint holds it, under its name or its llava alternate (llava_alternate_hub_name);
//   - its shape equals the shape the config gives.
// Returns one message per problem, in graph order; empty when the checkpoint fits. Tensors the
// graph does not know (e.g. old rotary inv_freq buffers) and dtypes are not checked here.
// Example: "checkpoint 'ckpt/': tensor 'model.norm.weight' has shape [128] in ckpt/model.safetensors,
// the config gives [256]".
std::vector<std::string> find_checkpoint_mismatches(const Checkpoint& checkpoint, const ModelGraph& graph);

// Throws WeightsError(kInvalid) whose message lists every mismatch, one per line.
void check_checkpoint_matches(const Checkpoint& checkpoint, const ModelGraph& graph);

// The checkpoint tensors of a graph, each name once, in graph order: every top-level module's
// params (an encoder's list already holds its whole tower). A tied lm_head lists no tensor of its
// own (model_graph.h), so the tied tensor is written and checked once, as transformers saves it.
std::vector<const Param*> checkpoint_params(const ModelGraph& graph);

}  // namespace shardplan
