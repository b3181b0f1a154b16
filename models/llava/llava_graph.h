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

#include <nlohmann/json.hpp>

#include "models/graph/model_graph.h"

namespace shardplan {

// Checks, besides the language model's (read_llama_dims, on text_config):
//   - vision_config.model_type is clip_vision_model, text_config.model_type llama/mistral/qwen2;
//   - vision hidden_size divisible by its heads; image_size divisible by patch_size;
//   - vision_feature_select_strategy is "default" or "full";
//   - vision_feature_layer (an index or a list of them) indexes the tower's num_hidden_layers + 1
//     hidden states.
ModelGraph build_llava_graph(const nlohmann::json& config);

}  // namespace shardplan
