// Which family's forward runs a graph (see family_model.h).
#include "models/forward/family_model.h"

#include "models/llama/llama_forward.h"
#include "models/llava/llava_forward.h"
#include "models/mixtral/mixtral_forward.h"
#include "models/whisper/whisper_forward.h"

namespace shardplan {

bool family_has_forward(const std::string& family) {
  return family == "llama" || family == "mixtral" || family == "llava" || family == "whisper";
}

std::unique_ptr<FamilyModel> make_family_model(const ModelGraph& graph, const TensorShards& shards) {
  if (graph.family == "llama") return std::make_unique<LlamaModel>(graph, shards);
  if (graph.family == "mixtral") return std::make_unique<MixtralModel>(graph, shards);
  if (graph.family == "llava") return std::make_unique<LlavaModel>(graph, shards);
  if (graph.family == "whisper") return std::make_unique<WhisperModel>(graph, shards);
  throw ConfigError("model family '" + graph.family + "' has no forward in the executor yet");
}

}  // namespace shardplan
