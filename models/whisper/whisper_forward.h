// The Whisper forward on one rank's shards (libtorch): the audio encoder (conv front end, the
// positions as loaded, pre-norm layers with a gelu MLP, the final layer_norm) and the decoder
// (token and position embedding, causal self-attention with a KV cache, cross-attention over the
// encoder states with its k/v cached at prefill, the MLP, layer_norm and the tied output
// projection). No communication here: a module under `tensor` returns its partial sum, and the
// encoder calls back after each inner block so that the runtime runs the plan's collectives whose
// `after` is that block (tensor mode: the all_reduce of its partial sum).
//
// Shapes: log-mel features [clips, num_mel_bins, 2 * max_source_positions]; encoder states
// [clips, max_source_positions, d_model]; token ids [requests, tokens] (int64); hidden states
// [requests, tokens, d_model]; logits [requests, vocabulary rows on this rank].
//
// Worked example, tiny-whisper (d_model 128, 4 heads of 32 in encoder and decoder, ffn 256, 2
// layers each, vocabulary 600, 50 source and 64 target positions) under tensor over [tp] (size 2),
// rank 1:
//   encoder (when under tensor too): heads [2, 4) (q/k/v_proj rows [64, 128), the q and v biases'
//     rows [64, 128); k_proj has no bias), out_proj columns [64, 128), fc1 rows [128, 256), fc2
//     columns [128, 256); after each of model.encoder.layers.{0,1}.{self_attn,mlp} the plan's
//     all_reduce makes the sum whole.
//   model.decoder.embed_tokens: vocabulary rows [300, 600) (ids below 300 give zero rows here) and
//     the whole embed_positions, which only group rank 0 adds (adds_whole_terms).
//   model.decoder.layers.N.self_attn: heads [2, 4) as in the encoder; its cache k and v are
//     [requests, 2, capacity, 32].
//   model.decoder.layers.N.encoder_attn: q_proj rows [64, 128); the fused W_kv [128, 128] is
//     cat(k_proj rows [64, 128), v_proj rows [64, 128)) (its rows 0-63: k of heads 2 and 3, rows
//     64-127: v of heads 2 and 3), b_kv = cat(zeros(64), v_proj.bias[64:128]); its cache k and v
//     are [requests, 2, 50, 32], written at prefill from the encoder states.
//   model.decoder.layers.N.mlp: fc1 rows [128, 256), fc2 columns [128, 256).
//   proj_out: the embedding's rows [300, 600) (tied), so logits [requests, 300] for ids 300..599.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/forward/family_model.h"
#include "models/forward/tensor_shard.h"
#include "models/graph/model_graph.h"
#include "models/layers/linear.h"
#include "models/layers/weights.h"
#include "models/whisper/whisper_config.h"

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

// The encoder's sizes from the typed config.
WhisperEncoderConfig whisper_encoder_config(const WhisperConfig& config);

struct WhisperDecoderConfig {
  int64_t d_model = 0;
  int64_t heads = 0;
  int64_t head_dim = 0;
  int64_t ffn = 0;
  int64_t layers = 0;
  int64_t vocab = 0;
  int64_t max_source_positions = 0;  // encoder frames cross-attention reads
  int64_t max_target_positions = 0;  // rows of embed_positions: the most positions a request holds
};

// The decoder's sizes from the typed config.
WhisperDecoderConfig whisper_decoder_config(const WhisperConfig& config);

// One rank's weights of an attention block or an MLP (column-parallel rows, row-parallel
// columns; row-parallel biases whole; k_proj has no bias).
struct WhisperAttentionWeights {
  at::Tensor norm, norm_bias;     // self_attn_layer_norm (encoder_attn_layer_norm for cross-attention)
  ColumnParallelLinear q, k, v;   // [heads held * head_dim, d_model] (k has no bias)
  RowParallelLinear o;            // [d_model, heads held * head_dim]
};

struct WhisperMlpWeights {
  at::Tensor norm, norm_bias;     // final_layer_norm (of the layer)
  ColumnParallelLinear fc1;
  RowParallelLinear fc2;
};

// The weights of an attention block (self_attn, encoder_attn) and of an MLP module, bound by
// parameter role; std::invalid_argument when one is missing. Encoder and decoder share them.
WhisperAttentionWeights whisper_attention_weights(const ModuleWeights& w);
WhisperMlpWeights whisper_mlp_weights(const ModuleWeights& w);

// Cross-attention's k and v of the encoder states in one projection: weight = cat(k_proj rows,
// v_proj rows) [2 * heads held * head_dim, d_model], bias = cat(zeros (k_proj has none),
// v_proj.bias) (undefined when v_proj has no bias either). The first half of the output is k.
struct WhisperKvProjection {
  at::Tensor weight, bias;
};
WhisperKvProjection whisper_fused_kv(const WhisperAttentionWeights& w);

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

// The decoder's embedding on this rank: the token rows it holds and the whole position table.
struct WhisperEmbeddingWeights {
  at::Tensor tokens;          // [vocabulary rows held, d_model]
  int64_t vocab_begin = 0;    // first vocabulary row held (0 unless split)
  at::Tensor positions;       // embed_positions [max_target_positions, d_model], whole
};

struct WhisperLmHeadWeights {
  at::Tensor norm, norm_bias;  // model.decoder.layer_norm
  at::Tensor weight;           // [vocabulary rows held, d_model] (the embedding's slice when tied)
};

// One attention module's cache on this rank: k and v [requests, heads held, positions, head_dim]
// (self-attention: the request's capacity; cross-attention: max_source_positions).
struct WhisperKvCache {
  at::Tensor k, v;
  int64_t frames = 0;  // cross-attention: encoder frames the last prefill wrote (0: none yet)
};

// ids [requests, tokens] -> embed_tokens(ids) + embed_positions[step.positions]. With a
// vocabulary slice (tensor mode), ids outside [vocab_begin, vocab_begin + rows) give zero rows;
// the positions are added only with `adds_whole_terms`, so the group's all_reduce adds them once.
at::Tensor whisper_embedding_forward(const WhisperEmbeddingWeights& w, const at::Tensor& ids,
                                     const StepPositions& step, bool adds_whole_terms);

// h + out_proj(attention(self_attn_layer_norm(h))) on the rank's heads, causal over `cache`: this
// step's keys and values are written at step.positions, then each query reads the first
// step.attend_len rows where step.allowed says so. `adds_whole_terms`: add h and out_proj's bias.
at::Tensor whisper_self_attention_forward(const WhisperDecoderConfig& config, const WhisperAttentionWeights& w,
                                          const at::Tensor& h, WhisperKvCache& cache, const StepPositions& step,
                                          bool adds_whole_terms);

// h + out_proj(attention(encoder_attn_layer_norm(h))) on the rank's heads, every query reading
// every encoder frame. With `encoder_states` ([requests, frames, d_model], prefill) k and v come
// from the fused projection `kv` and are written to `cache`; without (decode) the cache is read,
// and std::logic_error is thrown when no prefill wrote it. `adds_whole_terms` as above.
at::Tensor whisper_cross_attention_forward(const WhisperDecoderConfig& config, const WhisperAttentionWeights& w,
                                           const WhisperKvProjection& kv, const at::Tensor& h,
                                           const at::Tensor& encoder_states, WhisperKvCache& cache,
                                           bool adds_whole_terms);

// Logits of each request's last token: proj_out(layer_norm(h[:, -1])) -> [requests, rows held].
at::Tensor whisper_lm_head_forward(const WhisperLmHeadWeights& w, const at::Tensor& h);

// Whisper on one rank: the encoder and every decoder module of a whisper graph from the rank's
// shards, their caches, and one call per module. The runtime walks the plan and calls
// forward(i, ...) for module i of graph.modules, with the plan's collectives in between.
class WhisperModel : public FamilyModel {
 public:
  // Picks each module's tensors out of `shards` by their Hub names (a tied proj_out reads the
  // embedding's tensor) and fuses each cross-attention's k/v projection. Throws ConfigError for a
  // config the forward does not support, std::invalid_argument when a tensor is missing.
  WhisperModel(const ModelGraph& graph, const TensorShards& shards);

  const WhisperDecoderConfig& config() const { return config_; }

  // requests[i]: the requests module i computes on (attention and cross-attention modules; others
  // ignore theirs). Self-attention caches hold `capacity` positions, cross-attention caches
  // max_source_positions frames. Throws ConfigError when `capacity` exceeds
  // max_target_positions (embed_positions has no row for a later position).
  void allocate(const std::vector<int64_t>& requests, int64_t capacity) override;

  // Causal, no window.
  StepPositions step_positions(int64_t first, int64_t tokens, int64_t attend_len, at::Device device) const override;

  // Module i by kind: encoder log-mel features -> encoder states (its inner blocks call
  // comm->after_block; identity without a comm); embedding, attention, cross_attention (reading
  // in.side in prefill), mlp and lm_head as the free functions above.
  at::Tensor forward(size_t i, const ModuleInputs& in, const StepPositions& step, bool adds_whole_terms,
                     ModuleComm* comm) override;

 private:
  struct ModuleState {
    ModuleKind kind = ModuleKind::kEmbedding;
    std::string path;
    WhisperEmbeddingWeights embedding;
    WhisperAttentionWeights attention;  // self- or cross-attention
    WhisperKvProjection kv;             // cross-attention
    WhisperMlpWeights mlp;
    WhisperLmHeadWeights lm_head;
    WhisperKvCache cache;
  };

  WhisperDecoderConfig config_;
  WhisperEncoder encoder_;
  std::vector<ModuleState> modules_;
};

}  // namespace shardplan
