// Whisper's typed config, read once from config.json with transformers' WhisperConfig defaults
// (the sizes of openai/whisper-tiny); shared by the graph and the forward. No libtorch here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/graph/model_graph.h"

namespace shardplan {

struct WhisperConfig : FamilyConfig {
  int64_t vocab = 0;
  int64_t mel_bins = 0;
  int64_t d_model = 0;
  int64_t encoder_layers = 0;
  int64_t encoder_heads = 0;
  int64_t encoder_ffn = 0;
  int64_t decoder_layers = 0;
  int64_t decoder_heads = 0;
  int64_t decoder_ffn = 0;
  int64_t max_source_positions = 0;
  int64_t max_target_positions = 0;
  bool tie_word_embeddings = true;
  // NOTE: transformers' WhisperDecoder reads scale_embedding into embed_scale but never applies
  // it (inputs_embeds = embed_tokens(input_ids)), so it changes nothing here either.
  bool scale_embedding = false;
  std::string activation_function = "gelu";
  // Why the executor's forward cannot run this config (planning works); empty: it can.
  std::vector<std::string> executor_unsupported;
};

}  // namespace shardplan
