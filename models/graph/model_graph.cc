// The names of the model layer's enums as written in specs and plans, and parameter counting.
#include "models/graph/model_graph.h"

#include <set>

namespace shardplan {

const char* to_string(ModuleKind kind) {
  switch (kind) {
    case ModuleKind::kEmbedding: return "embedding";
    case ModuleKind::kAttention: return "attention";
    case ModuleKind::kCrossAttention: return "cross_attention";
    case ModuleKind::kMlp: return "mlp";
    case ModuleKind::kMoe: return "moe";
    case ModuleKind::kEncoder: return "encoder";
    case ModuleKind::kProjector: return "projector";
    case ModuleKind::kLmHead: return "lm_head";
  }
  return "unknown";
}

const char* to_string(ParamRole role) {
  switch (role) {
    case ParamRole::kNorm: return "norm";
    case ParamRole::kFinalNorm: return "final_norm";
    case ParamRole::kPreNorm: return "pre_norm";
    case ParamRole::kEmbedding: return "embedding";
    case ParamRole::kPositionEmbedding: return "position_embedding";
    case ParamRole::kClassEmbedding: return "class_embedding";
    case ParamRole::kPatchEmbedding: return "patch_embedding";
    case ParamRole::kConv1: return "conv1";
    case ParamRole::kConv2: return "conv2";
    case ParamRole::kLmHead: return "lm_head";
    case ParamRole::kQuery: return "query";
    case ParamRole::kKey: return "key";
    case ParamRole::kValue: return "value";
    case ParamRole::kOutput: return "output";
    case ParamRole::kGate: return "gate";
    case ParamRole::kUp: return "up";
    case ParamRole::kDown: return "down";
    case ParamRole::kFc1: return "fc1";
    case ParamRole::kFc2: return "fc2";
    case ParamRole::kRouter: return "router";
    case ParamRole::kSharedExpertGate: return "shared_expert_gate";
  }
  return "unknown";
}

const std::vector<ModuleKind>& all_module_kinds() {
  // NOTE: the order of the kinds table in spec-format.md §2, so listings read like the contract.
  static const std::vector<ModuleKind> kinds = {
      ModuleKind::kEmbedding, ModuleKind::kAttention, ModuleKind::kCrossAttention,
      ModuleKind::kMlp,       ModuleKind::kMoe,       ModuleKind::kEncoder,
      ModuleKind::kProjector, ModuleKind::kLmHead,
  };
  return kinds;
}

std::optional<ModuleKind> parse_module_kind(const std::string& text) {
  for (ModuleKind kind : all_module_kinds()) {
    if (text == to_string(kind)) return kind;
  }
  return std::nullopt;
}

const char* to_string(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "float32";
    case DType::kBFloat16: return "bfloat16";
    case DType::kFloat16: return "float16";
  }
  return "unknown";
}

std::optional<DType> parse_dtype(const std::string& text) {
  for (DType dtype : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    if (text == to_string(dtype)) return dtype;
  }
  return std::nullopt;
}

int dtype_bytes(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return 4;
    case DType::kBFloat16: return 2;
    case DType::kFloat16: return 2;
  }
  return 0;
}

const char* to_string(Stream stream) {
  switch (stream) {
    case Stream::kText: return "text";
    case Stream::kImage: return "image";
    case Stream::kAudio: return "audio";
  }
  return "unknown";
}

int64_t Param::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t ModelGraph::num_parameters() const {
  // NOTE: counted by name, so a tensor listed twice (an encoder's params and its children's)
  // counts once; a tied lm_head has no param of its own, as transformers' num_parameters()
  // counts a tied tensor once.
  std::set<std::string> seen;
  int64_t total = 0;
  for (const Module& module : modules) {
    for (const Param& param : module.params) {
      if (seen.insert(param.name).second) total += param.numel();
    }
  }
  return total;
}

}  // namespace shardplan
