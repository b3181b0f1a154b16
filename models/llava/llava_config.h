// LLaVA's typed config: the CLIP vision tower, the projector, how image features are taken, and
// the Llama-family language model (text_config), read once with transformers' LlavaConfig /
// CLIPVisionConfig / LlamaConfig defaults. No libtorch here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/graph/model_graph.h"
#include "models/llama/llama_config.h"

namespace shardplan {

struct ClipVisionConfig {
  int64_t hidden = 0;
  int64_t intermediate = 0;
  int64_t heads = 0;
  int64_t head_dim = 0;
  int64_t layers = 0;
  int64_t channels = 3;
  int64_t image_size = 0;
  int64_t patch_size = 0;
  int64_t patches = 0;       // (image_size / patch_size)^2, without the class token
  double layer_norm_eps = 1e-5;
  std::string hidden_act = "quick_gelu";
};

struct LlavaConfig : FamilyConfig {
  ClipVisionConfig vision;
  LlamaConfig text;                      // text_config
  std::vector<int64_t> feature_layers;   // vision_feature_layer, as given (negative: from the end)
  int64_t feature_state = 0;             // the first one as an index into layers + 1 hidden states
  bool drop_class_token = true;          // vision_feature_select_strategy 'default'
  int64_t tokens_per_image = 0;
  int64_t image_token_index = 32000;     // image_token_index (or image_token_id); LlavaConfig's default
  std::string projector_hidden_act = "gelu";
  bool projector_bias = true;
  // As LlamaConfig::executor_unsupported, for the tower and the projector too.
  std::vector<std::string> executor_unsupported;
};

}  // namespace shardplan
