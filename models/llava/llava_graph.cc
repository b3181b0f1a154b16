// LLaVA's module tree: CLIP vision tower as one encoder module, projector, Llama language model.
#include "models/llava/llava_graph.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "models/graph/config_reader.h"
#include "models/graph/module_builder.h"
#include "models/llama/llama_graph.h"
#include "models/llava/llava_config.h"

namespace shardplan {
namespace {

// The prompt id of an image's tokens: image_token_index, else image_token_id (newer configs),
// else transformers' LlavaConfig default (32000); a token id is an integer >= 0.
int64_t read_image_token(const nlohmann::json& config) {
  for (const char* key : {"image_token_index", "image_token_id"}) {
    auto it = config.find(key);
    if (it == config.end() || it->is_null()) continue;
    if (!it->is_number_integer() || it->get<int64_t>() < 0) {
      throw ConfigError(std::string(key) + " must be a token id (an integer >= 0), got " + describe_json(*it));
    }
    return it->get<int64_t>();
  }
  return 32000;
}

const char kVisionPrefix[] = "vision_tower.vision_model.";
const char kTextPrefix[] = "language_model.";

ClipVisionConfig read_clip_vision_dims(ConfigReader& reader) {
  // NOTE: transformers' CLIPVisionConfig defaults (openai/clip-vit-base-patch32's tower).
  ClipVisionConfig dims;
  dims.hidden = reader.size("hidden_size", 768);
  dims.intermediate = reader.size("intermediate_size", 3072);
  dims.layers = reader.size("num_hidden_layers", 12);
  dims.heads = reader.size("num_attention_heads", 12);
  dims.channels = reader.size("num_channels", 3);
  dims.image_size = reader.size("image_size", 224);
  dims.patch_size = reader.size("patch_size", 32);
  dims.hidden_act = reader.text("hidden_act", "quick_gelu");
  dims.layer_norm_eps = reader.number("layer_norm_eps", 1e-5);
  require_divisible(dims.hidden, reader.field("hidden_size"), dims.heads,
                    reader.field("num_attention_heads"));
  require_divisible(dims.image_size, reader.field("image_size"), dims.patch_size,
                    reader.field("patch_size"));
  const int64_t side = dims.image_size / dims.patch_size;
  dims.patches = side * side;
  dims.head_dim = dims.hidden / dims.heads;
  return dims;
}

// The indices of vision_feature_layer (one int or a list), each checked against the
// num_layers + 1 hidden states the tower returns (embeddings output, then every layer).
std::vector<int64_t> read_feature_layers(ConfigReader& reader, nlohmann::json& config,
                                         int64_t num_layers) {
  if (!reader.has("vision_feature_layer")) reader.set_derived("vision_feature_layer", -2);
  const nlohmann::json& value = config.at("vision_feature_layer");
  std::vector<nlohmann::json> items;
  if (value.is_array()) {
    items.assign(value.begin(), value.end());
  } else {
    items.push_back(value);
  }
  if (items.empty()) throw ConfigError("vision_feature_layer must not be an empty list");
  std::vector<int64_t> layers;
  for (const nlohmann::json& item : items) {
    const int64_t states = num_layers + 1;
    if (!item.is_number_integer() || item.get<int64_t>() < -states ||
        item.get<int64_t>() >= states) {
      throw ConfigError("vision_feature_layer must be an integer in [" + std::to_string(-states) +
                        ", " + std::to_string(states - 1) + "] (vision_config.num_hidden_layers " +
                        std::to_string(num_layers) + " + 1 hidden states), got " +
                        describe_json(item));
    }
    layers.push_back(item.get<int64_t>());
  }
  return layers;
}

Module clip_vision_tower_module(const ClipVisionConfig& dims) {
  Module tower = make_module("vision_tower", ModuleKind::kEncoder, Stream::kImage);
  tower.dims.hidden = dims.hidden;
  tower.dims.heads = dims.heads;
  tower.dims.kv_heads = dims.heads;
  tower.dims.head_dim = dims.hidden / dims.heads;
  tower.dims.intermediate = dims.intermediate;
  tower.dims.layers = dims.layers;

  const std::string model = kVisionPrefix;
  add_param(tower, model + "embeddings.class_embedding", {dims.hidden}, no_split(),
            ParamRole::kClassEmbedding);
  add_param(tower, model + "embeddings.patch_embedding.weight",
            {dims.hidden, dims.channels, dims.patch_size, dims.patch_size}, no_split(),
            ParamRole::kPatchEmbedding);
  add_param(tower, model + "embeddings.position_embedding.weight", {dims.patches + 1, dims.hidden},
            no_split(), ParamRole::kPositionEmbedding);
  add_norm(tower, model + "pre_layrnorm", dims.hidden, /*has_bias=*/true, ParamRole::kPreNorm);  // sic, as in CLIP

  for (int layer = 0; layer < dims.layers; ++layer) {
    const std::string base = model + "encoder.layers." + std::to_string(layer) + ".";
    // NOTE: CLIP attention is multi-head (k/v have as many heads as q), so k/v are not replicable.
    Module attention = make_module(base + "self_attn", ModuleKind::kAttention, Stream::kImage);
    attention.dims = tower.dims;
    attention.dims.intermediate = 0;
    attention.dims.layers = 0;
    add_norm(attention, base + "layer_norm1", dims.hidden, /*has_bias=*/true);
    for (const auto& [proj, role] : {std::pair{"q_proj", ParamRole::kQuery}, std::pair{"k_proj", ParamRole::kKey},
                                     std::pair{"v_proj", ParamRole::kValue}}) {
      add_column_linear(attention, attention.path + "." + proj, dims.hidden, dims.hidden,
                        dims.heads, /*has_bias=*/true, role);
    }
    add_row_linear(attention, attention.path + ".out_proj", dims.hidden, dims.hidden, dims.heads,
                   /*has_bias=*/true, ParamRole::kOutput);

    Module mlp = make_module(base + "mlp", ModuleKind::kMlp, Stream::kImage);
    mlp.dims.hidden = dims.hidden;
    mlp.dims.intermediate = dims.intermediate;
    add_norm(mlp, base + "layer_norm2", dims.hidden, /*has_bias=*/true);
    add_column_linear(mlp, mlp.path + ".fc1", dims.intermediate, dims.hidden, dims.intermediate,
                      /*has_bias=*/true, ParamRole::kFc1);
    add_row_linear(mlp, mlp.path + ".fc2", dims.hidden, dims.intermediate, dims.intermediate,
                   /*has_bias=*/true, ParamRole::kFc2);

    for (const Module* child : {&attention, &mlp}) {
      tower.params.insert(tower.params.end(), child->params.begin(), child->params.end());
    }
    tower.children.push_back(std::move(attention));
    tower.children.push_back(std::move(mlp));
  }
  add_norm(tower, model + "post_layernorm", dims.hidden, /*has_bias=*/true, ParamRole::kFinalNorm);
  return tower;
}

Module projector_module(int64_t in_width, int64_t text_hidden, bool has_bias) {
  Module module = make_module("multi_modal_projector", ModuleKind::kProjector, Stream::kImage);
  module.merges_into_text = true;
  module.dims.hidden = in_width;
  module.dims.intermediate = text_hidden;
  add_column_linear(module, "multi_modal_projector.linear_1", text_hidden, in_width, text_hidden,
                    has_bias, ParamRole::kFc1);
  add_row_linear(module, "multi_modal_projector.linear_2", text_hidden, text_hidden, text_hidden,
                 has_bias, ParamRole::kFc2);
  return module;
}

}  // namespace

ModelGraph build_llava_graph(const nlohmann::json& config) {
  ModelGraph graph;
  graph.family = llava_family().name;
  graph.config = config;
  std::vector<std::string>* defaulted = &graph.defaulted_fields;
  ConfigReader reader(graph.config, "", defaulted);
  graph.model_type = reader.text("model_type", "llava");

  // Vision tower. NOTE: LlavaConfig's own default tower is CLIP ViT-L/14 at 336 px, not
  // CLIPVisionConfig's defaults; those fill whatever a given vision_config leaves out.
  const bool vision_given = reader.has("vision_config");
  nlohmann::json& vision = reader.child("vision_config");
  if (!vision_given) {
    vision = {{"model_type", "clip_vision_model"}, {"hidden_size", 1024},
              {"intermediate_size", 4096},         {"patch_size", 14},
              {"image_size", 336},                 {"num_hidden_layers", 24},
              {"num_attention_heads", 16},         {"vocab_size", 32000},
              {"projection_dim", 768}};
  }
  ConfigReader vision_reader(vision, "vision_config", defaulted);
  const std::string vision_type = vision_reader.text("model_type", "clip_vision_model");
  if (vision_type != "clip_vision_model") {
    throw ConfigError("vision_config.model_type '" + vision_type +
                      "' is not supported; supported vision towers: clip_vision_model");
  }
  auto typed = std::make_shared<LlavaConfig>();
  typed->vision = read_clip_vision_dims(vision_reader);
  const ClipVisionConfig& vision_dims = typed->vision;

  // Language model.
  nlohmann::json& text = reader.child("text_config");
  ConfigReader text_reader(text, "text_config", defaulted);
  const std::string text_type = text_reader.text("model_type", "llama");
  const std::vector<std::string>& text_types = llama_family().model_types;
  if (std::find(text_types.begin(), text_types.end(), text_type) == text_types.end()) {
    std::string list;
    for (const std::string& type : text_types) list += (list.empty() ? "" : ", ") + type;
    throw ConfigError("text_config.model_type '" + text_type +
                      "' is not supported; supported language models: " + list);
  }
  LlamaConfig& text_dims = typed->text;
  text_dims.model_type = text_type;
  read_llama_config(text_reader, llama_variant(text_type), text_dims);

  // Projector and how image features are taken.
  const std::string strategy = reader.text("vision_feature_select_strategy", "default");
  if (strategy != "default" && strategy != "full") {
    throw ConfigError("vision_feature_select_strategy must be 'default' or 'full', got '" +
                      strategy + "'");
  }
  const std::vector<int64_t> feature_layers =
      read_feature_layers(reader, graph.config, vision_dims.layers);
  const bool projector_bias = reader.flag("multimodal_projector_bias", true);
  // NOTE: as LlavaConfig: the top-level flag, or text_config's when that one is set.
  const bool tied = reader.flag("tie_word_embeddings", false) || text_dims.tie_word_embeddings;
  text_dims.tie_word_embeddings = tied;
  typed->projector_hidden_act = reader.text("projector_hidden_act", "gelu");
  typed->projector_bias = projector_bias;
  typed->feature_layers = feature_layers;
  const int64_t states = vision_dims.layers + 1;
  typed->feature_state = feature_layers[0] < 0 ? feature_layers[0] + states : feature_layers[0];
  typed->drop_class_token = strategy == "default";
  typed->tokens_per_image = vision_dims.patches + (strategy == "full" ? 1 : 0);
  typed->image_token_index = read_image_token(graph.config);
  typed->executor_unsupported = text_dims.executor_unsupported;
  if (vision_dims.hidden_act != "quick_gelu") {
    typed->executor_unsupported.push_back("vision_config.hidden_act '" + vision_dims.hidden_act +
                                          "' is not supported by the executor yet (quick_gelu)");
  }
  if (typed->projector_hidden_act != "gelu") {
    typed->executor_unsupported.push_back("projector_hidden_act '" + typed->projector_hidden_act +
                                          "' is not supported by the executor yet (gelu)");
  }
  if (feature_layers.size() != 1) {
    typed->executor_unsupported.push_back("vision_feature_layer as a list of layers is not supported by the executor yet");
  }
  graph.family_config = typed;

  graph.modules.push_back(clip_vision_tower_module(vision_dims));
  graph.modules.push_back(projector_module(
      vision_dims.hidden * static_cast<int64_t>(feature_layers.size()), text_dims.hidden,
      projector_bias));
  // NOTE: text_dims.tie_word_embeddings is the LlavaConfig rule above (either flag).
  add_llama_decoder(graph, kTextPrefix, text_dims,
                    [&](int layer) { return llama_mlp_module(kTextPrefix, layer, text_dims); });
  // 'default' drops the class token: 576 tokens per 336-px image at patch 14; 'full' keeps it.
  graph.workload.tokens_per_image = typed->tokens_per_image;
  graph.workload.encoder_tokens_per_item = vision_dims.patches + 1;
  graph.workload.image_token = typed->image_token_index;
  graph.workload.image_channels = vision_dims.channels;
  graph.workload.image_size = vision_dims.image_size;
  return graph;
}

const Family& llava_family() {
  static const Family family{"llava", {"llava"}, &build_llava_graph, &llava_alternate_hub_name};
  return family;
}

}  // namespace shardplan
