// LLaVA: a CLIP vision tower, a two-layer projector into the text width, and a Llama-family
// language model, with transformers' LlavaConfig / CLIPVisionConfig / LlamaConfig defaults for
// every field the config.json leaves out (llava-1.5's text_config has no hidden_size at all).
//
// Module tree of llava-1.5-7b, in execution order:
//   vision_tower                              encoder    every vision_tower.vision_model.* tensor
//     vision_tower.vision_model.encoder.layers.N.self_attn   attention  (children, display only)
//     vision_tower.vision_model.encoder.layers.N.mlp         mlp
//   multi_modal_projector                     projector  linear_1 [4096, 1024],
//                                                        linear_2 [4096, 4096]
//   language_model.model.embed_tokens         embedding
//   language_model.model.layers.N.self_attn   attention
//   language_model.model.layers.N.mlp         mlp
//   language_model.lm_head                    lm_head    language_model.model.norm.weight,
//                                                        language_model.lm_head.weight
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "models/graph/family.h"
#include "models/graph/model_graph.h"

namespace shardplan {

// Checks, besides the language model's (read_llama_config, on text_config):
//   - vision_config.model_type is clip_vision_model, text_config.model_type llama/mistral/qwen2;
//   - vision hidden_size divisible by its heads; image_size divisible by patch_size;
//   - vision_feature_select_strategy is "default" or "full";
//   - vision_feature_layer (an index or a list of them) indexes the tower's num_hidden_layers + 1
//     hidden states.
// Its typed config: LlavaConfig (llava_config.h).
ModelGraph build_llava_graph(const nlohmann::json& config);

// llava checkpoints exist in two layouts. The classic one (llava-hf before transformers 4.52,
// and the names our model graph uses) and the newer one that save_pretrained writes today:
//
//   classic                          newer
//   language_model.model.*           model.language_model.*
//   language_model.lm_head.weight    lm_head.weight
//   vision_tower.*                   model.vision_tower.*
//   multi_modal_projector.*          model.multi_modal_projector.*
//
// Returns the name in the other layout, either direction, or nullopt when the name has none.
// E.g. "language_model.model.layers.0.mlp.up_proj.weight" <-> "model.language_model.layers.0.mlp.up_proj.weight".
std::optional<std::string> llava_alternate_hub_name(const std::string& name);

const Family& llava_family();

}  // namespace shardplan
