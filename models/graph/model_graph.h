// The module tree of a model as the planner sees it: every module that takes a rule, in execution
// order, with every checkpoint tensor it owns (Hub name, shape) and how each tensor splits.
// Built from a Hugging Face config.json by the family code in models/<family>/; no libtorch here.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace shardplan {

// The one exception type of the model layer: a config.json that cannot be read or makes no
// sense. The CLIs turn it into exit code 2 (usage or I/O error).
class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& message) : Error(2, message) {}
};

enum class ModuleKind {
  kEmbedding,
  kAttention,
  kCrossAttention,
  kMlp,
  kMoe,
  kEncoder,
  kProjector,
  kLmHead,
};

// "embedding", "attention", ... as written in specs.
const char* to_string(ModuleKind kind);
std::optional<ModuleKind> parse_module_kind(const std::string& text);
const std::vector<ModuleKind>& all_module_kinds();

enum class DType { kFloat32, kBFloat16, kFloat16 };
const char* to_string(DType dtype);  // "float32", "bfloat16", "float16"
std::optional<DType> parse_dtype(const std::string& text);
int dtype_bytes(DType dtype);

// How a tensor splits when its module runs in `tensor` mode.
//   kNone:    whole on every rank (norms, router, biases of row-parallel layers, positions).
//   kUnits:   dimension `dim` is made of `units` equal units (heads, KV heads, intermediate rows,
//             vocabulary rows); a group of size g takes units/g each, in rank order. When
//             `replicable` is set (KV heads) and g > units, g must be a multiple of units and group
//             rank r holds unit r / (g / units).
struct TensorSplit {
  enum class Type { kNone, kUnits };
  Type type = Type::kNone;
  int dim = 0;
  int64_t units = 0;
  bool replicable = false;
};

// What a tensor is to its module, declared where the graph adds it: the forward binds its weights
// by role (never by name) and the cost model counts by role. A linear layer's weight and bias
// share the role (Param::bias tells them apart).
enum class ParamRole {
  kNorm,               // the module's input norm (input_layernorm, layer_norm1, ...)
  kFinalNorm,          // the norm after the last block (model.norm, an encoder's post norm)
  kPreNorm,            // an encoder's norm before its first block (CLIP's pre_layrnorm)
  kEmbedding,          // token embedding rows
  kPositionEmbedding,  // learned absolute positions
  kClassEmbedding,     // CLIP's class token
  kPatchEmbedding,     // CLIP's patch convolution
  kConv1, kConv2,      // Whisper's audio stem
  kLmHead,             // output projection rows
  kQuery, kKey, kValue, kOutput,  // attention projections
  kGate, kUp, kDown,   // gated MLP (or an expert's / the shared expert's)
  kFc1, kFc2,          // plain MLP (and a projector's two linears)
  kRouter,             // MoE router
  kSharedExpertGate,   // Qwen2-MoE: the shared expert's sigmoid gate
};
const char* to_string(ParamRole role);  // "query", "gate", ...

// One checkpoint tensor.
struct Param {
  std::string name;               // Hub name, e.g. "model.layers.0.self_attn.k_proj.weight"
  std::vector<int64_t> shape;
  TensorSplit tensor_split;       // split under `tensor` mode of its module
  int expert = -1;                // >= 0: belongs to this expert of a moe module (split by `expert`)
  ParamRole role = ParamRole::kNorm;
  bool bias = false;              // the bias of a linear or norm (else its weight)
  // Part of a MoE module's shared expert (Qwen2-MoE): split by the module's shared-expert mode.
  bool shared_expert = false;
  int64_t numel() const;
};

// The sizes a module's divisibility checks and cost model need. Zero where not meaningful.
struct ModuleDims {
  int64_t hidden = 0;             // width of the module's input activation
  int64_t heads = 0;              // attention / cross-attention / encoder heads
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t intermediate = 0;       // mlp, moe expert, projector hidden, encoder mlp
  int64_t experts = 0;
  int64_t experts_per_token = 0;
  int64_t shared_expert_intermediate = 0;  // moe with a shared expert (Qwen2-MoE); 0: none
  int64_t vocab = 0;
  int64_t layers = 0;             // encoder: number of layers inside
  int64_t kv_source_hidden = 0;   // cross-attention: width of the encoder states
};

// The activation streams of a model. Text models have one; llava adds the image stream that is
// merged into the text stream; whisper adds the audio stream that cross-attention reads.
enum class Stream { kText, kImage, kAudio };
const char* to_string(Stream stream);

struct Module {
  std::string path;               // "model.layers.3.self_attn"; a documented virtual path where
                                  // the Hub has no single prefix (whisper "model.decoder.layers.3.mlp")
  ModuleKind kind;
  int layer = -1;                 // decoder / language-model layer index; -1 outside layers
  Stream stream = Stream::kText;  // the stream the module reads and writes
  // cross_attention only: the stream its k/v projection reads (computed once per request).
  std::optional<Stream> kv_stream;
  // After this module, its output stream is merged into the text stream (llava's projector).
  bool merges_into_text = false;
  ModuleDims dims;
  std::vector<Param> params;
  // encoder only: its inner attention / mlp blocks, for display and the executor; the encoder's
  // params list already holds every tensor of the tower.
  std::vector<Module> children;
};

// Per-request shapes of the workload that depend on the architecture.
struct WorkloadShape {
  int64_t tokens_per_image = 0;   // tokens an image adds to the prompt (llava-1.5: 576)
  int64_t encoder_tokens_per_item = 0;  // tokens inside the encoder per item (CLIP: 577)
  int64_t encoder_tokens_per_clip = 0;  // whisper: max_source_positions (1500)
  int64_t max_target_positions = 0;     // whisper's decoder limit, llama's max_position_embeddings
  // The positions are a learned table (whisper's embed_positions): past max_target_positions a
  // request cannot go at all. Rotary positions (llama) go on, beyond what the model was trained for.
  bool learned_positions = false;
  // What the synthetic inputs of an image or audio stream look like (0 / -1: no such stream).
  int64_t image_token = -1;              // the prompt id an image's tokens take (llava: image_token_index)
  int64_t image_channels = 0, image_size = 0;
  int64_t mel_bins = 0;                  // whisper: log-mel bins per frame
};

// A family's typed config (models/<family>/<family>_config.h), read once from config.json by the
// family's graph builder and shared by the graph and the forward.
struct FamilyConfig {
  virtual ~FamilyConfig() = default;
};

struct ModelGraph {
  std::string family;             // the family table's name of its family (models/family_table.h)
  std::string model_type;         // as in config.json
  std::vector<Module> modules;    // execution order for one forward pass
  // Tied output projection: the lm_head module has no param of its own and uses this tensor.
  std::optional<std::string> tied_lm_head_to;
  WorkloadShape workload;
  DType config_dtype = DType::kBFloat16;  // config's torch_dtype
  int64_t hidden = 0;             // text / decoder width
  int64_t vocab = 0;
  nlohmann::json config;          // the config.json as read, with transformers' defaults applied
  // The fields the config.json lacked (or had as null) and that took transformers' default, as
  // dotted paths in the order they were read: "text_config.hidden_size", "head_dim", ... Lets a
  // caller say which sizes it did not read from the file (llava-1.5's text_config has none).
  std::vector<std::string> defaulted_fields;

  // The family's typed config (never null in a built graph).
  std::shared_ptr<const FamilyConfig> family_config;

  int64_t num_parameters() const;  // unique tensors, as transformers counts them

  // The typed config as the family's type; std::logic_error when it is another family's.
  template <class T>
  const T& typed_config() const {
    const T* config = dynamic_cast<const T*>(family_config.get());
    if (!config) throw std::logic_error("model graph of family '" + family + "' has no config of the asked type");
    return *config;
  }
};

}  // namespace shardplan
