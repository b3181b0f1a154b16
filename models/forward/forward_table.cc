// The forward table: each family of the family table (models/graph/family.h) with the factory
// of its FamilyModel. A new family adds its line here.
#include <functional>
#include <memory>

#include "models/forward/family_model.h"
#include "models/llama/llama_forward.h"
#include "models/llama/llama_graph.h"
#include "models/llava/llava_forward.h"
#include "models/llava/llava_graph.h"
#include "models/mixtral/mixtral_forward.h"
#include "models/mixtral/mixtral_graph.h"
#include "models/qwen2_moe/qwen2_moe_forward.h"
#include "models/qwen2_moe/qwen2_moe_graph.h"
#include "models/whisper/whisper_forward.h"
#include "models/whisper/whisper_graph.h"

namespace shardplan {
namespace {

struct ForwardEntry {
  const Family& (*family)();
  std::unique_ptr<FamilyModel> (*make)(const ModelGraph& graph, const TensorShards& shards);
};

template <class Model>
std::unique_ptr<FamilyModel> make(const ModelGraph& graph, const TensorShards& shards) {
  return std::make_unique<Model>(graph, shards);
}

const ForwardEntry kForwards[] = {
    {&llama_family, &make<LlamaModel>},       {&mixtral_family, &make<MixtralModel>},
    {&qwen2_moe_family, &make<Qwen2MoeModel>}, {&llava_family, &make<LlavaModel>},
    {&whisper_family, &make<WhisperModel>},
};

const ForwardEntry* forward_of(const std::string& family) {
  for (const ForwardEntry& entry : kForwards) {
    if (entry.family().name == family) return &entry;
  }
  return nullptr;
}

}  // namespace

bool family_has_forward(const std::string& family) { return forward_of(family) != nullptr; }

std::unique_ptr<FamilyModel> make_family_model(const ModelGraph& graph, const TensorShards& shards) {
  const ForwardEntry* entry = forward_of(graph.family);
  if (!entry) throw ConfigError("model family '" + graph.family + "' has no forward in the executor yet");
  return entry->make(graph, shards);
}

}  // namespace shardplan
