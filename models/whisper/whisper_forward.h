// The Whisper audio encoder on one rank's shards (libtorch): the conv front end, the positions as
// loaded, pre-norm layers with a gelu MLP and the final layer_norm. No communication here: the
// encoder calls back after each inner block so that the runtime runs the plan's collectives
// whose `after` is that block (tensor mode: the all_reduce of its partial sum). The decoder is
// not implemented yet (docs/executor-run.md, Limitations).
//
// Shapes: log-mel features [clips, num_mel_bins, 2 * max_source_positions]; encoder states
// [clips, max_source_positions, d_model].
//
// Worked example, tiny-whisper (d_model 128, 4 encoder heads of 32, ffn 256, 2 layers) with the
// encoder under tensor over [tp] (size 2): rank 1 holds heads [2, 4) (q/k/v_proj rows [64, 128),
// the q and v biases' rows [64, 128); k_proj has no bias), out_proj columns [64, 128), fc1 rows
// [128, 256), fc2 columns [128, 256); after each of model.encoder.layers.{0,1}.{self_attn,mlp}
// the plan's all_reduce makes the sum whole.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/forward/tensor_shard.h"
#include "models/graph/model_graph.h"

namespace shardplan {

struct WhisperEncoderConfig {
  int64_t d_model = 0;
  int64_t heads = 0;
  int64_t head_dim = 0;
  int64_t ffn = 0;
  int64_t layers = 0;
  int64_t mel_bins = 0;
  int64_t max_source_positions = 0;  // frames after conv2 (stride 2): the input has twice as many
};

// Reads a whisper config.json (after models/whisper applied transformers' defaults). Checks
// (ConfigError, "not supported by the executor yet"): activation_function is gelu.
WhisperEncoderConfig read_whisper_encoder_config(const nlohmann::json& config);

// One rank's weights of an attention block or an MLP (column-parallel rows, row-parallel
// columns; row-parallel biases whole; k_proj has no bias).
struct WhisperAttentionWeights {
  at::Tensor norm, norm_bias;   // self_attn_layer_norm (encoder_attn_layer_norm for cross-attention)
  at::Tensor q, k, v, o;
  at::Tensor q_bias, v_bias, o_bias;
};

struct WhisperMlpWeights {
  at::Tensor norm, norm_bias;   // final_layer_norm (of the layer)
  at::Tensor fc1, fc1_bias, fc2, fc2_bias;
};

// h + out_proj(attention(self_attn_layer_norm(h))) over the rank's heads, no mask (the encoder's
// frames see each other). `adds_whole_terms`: add h and out_proj's bias.
at::Tensor whisper_encoder_attention_forward(const WhisperEncoderConfig& config, const WhisperAttentionWeights& w,
                                             const at::Tensor& h, bool adds_whole_terms);

// h + fc2(gelu(fc1(final_layer_norm(h)))) (exact, erf gelu).
at::Tensor whisper_mlp_forward(const WhisperMlpWeights& w, const at::Tensor& h, bool adds_whole_terms);

class WhisperEncoder {
 public:
  // As LlavaVision::AfterBlock: the runtime's collectives after the inner block `child_path`.
  using AfterBlock = std::function<at::Tensor(const std::string& child_path, at::Tensor)>;

  // Picks the encoder's tensors out of `shards` by Hub name. Throws ConfigError for an
  // unsupported config, std::invalid_argument for a missing tensor.
  WhisperEncoder(const ModelGraph& graph, const TensorShards& shards);

  const WhisperEncoderConfig& config() const { return config_; }

  // features [clips, mel, 2 * max_source_positions] -> states [clips, max_source_positions,
  // d_model]: gelu(conv1), gelu(conv2, stride 2), + embed_positions, every layer, layer_norm.
  at::Tensor encode(const at::Tensor& features, bool adds_whole_terms, const AfterBlock& after_block) const;

 private:
  WhisperEncoderConfig config_;
  at::Tensor conv1_, conv1_bias_, conv2_, conv2_bias_, positions_, norm_, norm_bias_;
  std::vector<std::string> child_paths_;
  std::vector<WhisperAttentionWeights> attention_;
  std::vector<WhisperMlpWeights> mlp_;
};

}  // namespace shardplan
