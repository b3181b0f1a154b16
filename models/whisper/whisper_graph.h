// Whisper: an audio encoder (one `encoder` module) and a text decoder whose cross-attention reads
// the encoder's states, with transformers' WhisperConfig defaults (whisper-tiny's sizes).
//
// Module tree of whisper-large-v3, in execution order:
//   model.encoder                         encoder          every model.encoder.* tensor
//     model.encoder.layers.N.self_attn    attention        (children, display only)
//     model.encoder.layers.N.mlp          mlp              virtual: fc1, fc2, final_layer_norm
//   model.decoder.embed_tokens            embedding        + model.decoder.embed_positions.weight
//   model.decoder.layers.N.self_attn      attention
//   model.decoder.layers.N.encoder_attn   cross_attention  k/v read the audio stream
//   model.decoder.layers.N.mlp            mlp              virtual: fc1, fc2, final_layer_norm
//   proj_out                              lm_head          model.decoder.layer_norm; proj_out.weight
//                                                          only when untied (tied by default)
// NOTE: Whisper's fc1 / fc2 / final_layer_norm sit directly in the layer, so the family names its
// MLP "<layer>.mlp", a path no Hub tensor starts with (documented in docs/models.md).
#pragma once

#include <nlohmann/json.hpp>

#include "models/graph/family.h"
#include "models/graph/model_graph.h"

namespace shardplan {

// Checks: every size an integer >= 1; d_model divisible by encoder_attention_heads and by
// decoder_attention_heads; the aliases transformers maps (hidden_size -> d_model,
// num_attention_heads -> encoder_attention_heads, num_hidden_layers -> encoder_layers) agree with
// the field they stand for when both are given.
// Its typed config: WhisperConfig (whisper_config.h).
ModelGraph build_whisper_graph(const nlohmann::json& config);

const Family& whisper_family();

}  // namespace shardplan
