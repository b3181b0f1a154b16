// The Whisper encoder and decoder on a rank's shards (see whisper_forward.h).
#include "models/whisper/whisper_forward.h"

#include <ATen/ATen.h>

#include <cmath>
#include <stdexcept>
#include <utility>

#include "models/layers/attention.h"
#include "models/layers/norm.h"

namespace shardplan {
namespace {

// NOTE: transformers' Whisper layer norms use nn.LayerNorm's default eps.
constexpr double kLayerNormEps = 1e-5;

at::Tensor norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  return layer_norm(x, weight, bias, kLayerNormEps);
}

// out_proj of the attended heads, plus h and out_proj's bias with `adds_whole_terms`.
at::Tensor attention_output(const WhisperAttentionWeights& w, const at::Tensor& attended, const at::Tensor& h,
                            bool adds_whole_terms) {
  at::Tensor out = w.o.forward(heads_merged(attended), adds_whole_terms);
  if (adds_whole_terms) out = out + h;
  return out;
}

void require_supported(const WhisperConfig& config) {
  if (!config.executor_unsupported.empty()) {
    throw ConfigError("whisper: " + config.executor_unsupported.front());
  }
}

}  // namespace

WhisperEncoderConfig whisper_encoder_config(const WhisperConfig& config) {
  require_supported(config);
  WhisperEncoderConfig c;
  c.d_model = config.d_model;
  c.heads = config.encoder_heads;
  c.head_dim = c.d_model / c.heads;
  c.ffn = config.encoder_ffn;
  c.layers = config.encoder_layers;
  c.mel_bins = config.mel_bins;
  c.max_source_positions = config.max_source_positions;
  return c;
}

WhisperDecoderConfig whisper_decoder_config(const WhisperConfig& config) {
  require_supported(config);
  WhisperDecoderConfig c;
  c.d_model = config.d_model;
  c.heads = config.decoder_heads;
  c.head_dim = c.d_model / c.heads;
  c.ffn = config.decoder_ffn;
  c.layers = config.decoder_layers;
  c.vocab = config.vocab;
  c.max_source_positions = config.max_source_positions;
  c.max_target_positions = config.max_target_positions;
  return c;
}

WhisperAttentionWeights whisper_attention_weights(const ModuleWeights& w) {
  WhisperAttentionWeights a;
  a.norm = w.weight(ParamRole::kNorm);
  a.norm_bias = w.bias(ParamRole::kNorm);
  a.q = column_parallel(w, {ParamRole::kQuery});
  a.k = column_parallel(w, {ParamRole::kKey});
  a.v = column_parallel(w, {ParamRole::kValue});
  a.o = row_parallel(w, {ParamRole::kOutput});
  return a;
}

WhisperMlpWeights whisper_mlp_weights(const ModuleWeights& w) {
  WhisperMlpWeights f;
  f.norm = w.weight(ParamRole::kNorm);
  f.norm_bias = w.bias(ParamRole::kNorm);
  f.fc1 = column_parallel(w, {ParamRole::kFc1});
  f.fc2 = row_parallel(w, {ParamRole::kFc2});
  return f;
}

WhisperKvProjection whisper_fused_kv(const WhisperAttentionWeights& w) {
  WhisperKvProjection kv;
  kv.weight = at::cat({w.k.weight, w.v.weight}, 0).contiguous();
  if (w.v.bias.defined()) kv.bias = at::cat({at::zeros_like(w.v.bias), w.v.bias}, 0);
  return kv;
}

at::Tensor whisper_encoder_attention_forward(const WhisperEncoderConfig& config, const WhisperAttentionWeights& w,
                                             const at::Tensor& h, bool adds_whole_terms) {
  const int64_t d = config.head_dim;
  const at::Tensor x = norm(h, w.norm, w.norm_bias);
  const at::Tensor q = heads_first(w.q.forward(x), d);
  const at::Tensor k = heads_first(w.k.forward(x), d);
  const at::Tensor v = heads_first(w.v.forward(x), d);
  return attention_output(w, attend(q, k, v, at::Tensor()), h, adds_whole_terms);
}

at::Tensor whisper_mlp_forward(const WhisperMlpWeights& w, const at::Tensor& h, bool adds_whole_terms) {
  const at::Tensor x = norm(h, w.norm, w.norm_bias);
  const at::Tensor inner = at::gelu(w.fc1.forward(x));
  at::Tensor out = w.fc2.forward(inner, adds_whole_terms);
  if (adds_whole_terms) out = out + h;
  return out;
}

WhisperEncoder::WhisperEncoder(const ModelGraph& graph, const TensorShards& shards)
    : config_(whisper_encoder_config(graph.typed_config<WhisperConfig>())) {
  const Module* encoder = nullptr;
  for (const Module& m : graph.modules) {
    if (m.kind == ModuleKind::kEncoder) encoder = &m;
  }
  if (!encoder) throw std::logic_error("a whisper graph without an encoder");
  const ModuleWeights w(*encoder, shards);
  conv1_ = w.weight(ParamRole::kConv1);
  conv1_bias_ = w.bias(ParamRole::kConv1);
  conv2_ = w.weight(ParamRole::kConv2);
  conv2_bias_ = w.bias(ParamRole::kConv2);
  positions_ = w.weight(ParamRole::kPositionEmbedding);
  norm_ = w.weight(ParamRole::kFinalNorm);
  norm_bias_ = w.bias(ParamRole::kFinalNorm);
  for (const Module& child : encoder->children) {
    child_paths_.push_back(child.path);
    // "model.encoder.layers.N.self_attn" / "model.encoder.layers.N.mlp" (a virtual path).
    const ModuleWeights child_weights(child, shards);
    if (child.kind == ModuleKind::kAttention) {
      attention_.push_back(whisper_attention_weights(child_weights));
    } else if (child.kind == ModuleKind::kMlp) {
      mlp_.push_back(whisper_mlp_weights(child_weights));
    } else {
      throw std::logic_error("encoder child " + child.path + " is neither attention nor mlp");
    }
  }
  if (static_cast<int64_t>(attention_.size()) != config_.layers || static_cast<int64_t>(mlp_.size()) != config_.layers) {
    throw std::logic_error("the encoder's children do not match encoder_layers");
  }
}

at::Tensor WhisperEncoder::encode(const at::Tensor& features, bool adds_whole_terms,
                                  const AfterBlock& after_block) const {
  const at::Tensor x = features.to(conv1_.scalar_type());
  at::Tensor h = at::gelu(at::conv1d(x, conv1_, conv1_bias_, /*stride=*/at::IntArrayRef{1}, /*padding=*/at::IntArrayRef{1}));
  h = at::gelu(at::conv1d(h, conv2_, conv2_bias_, /*stride=*/at::IntArrayRef{2}, /*padding=*/at::IntArrayRef{1}));
  h = h.permute({0, 2, 1});
  h = h + positions_.narrow(0, 0, h.size(1)).unsqueeze(0);
  for (size_t c = 0; c < child_paths_.size(); ++c) {
    const size_t layer = c / 2;
    h = c % 2 == 0 ? whisper_encoder_attention_forward(config_, attention_[layer], h, adds_whole_terms)
                   : whisper_mlp_forward(mlp_[layer], h, adds_whole_terms);
    h = after_block(child_paths_[c], h);
  }
  return norm(h, norm_, norm_bias_);
}

at::Tensor whisper_embedding_forward(const WhisperEmbeddingWeights& w, const at::Tensor& ids,
                                     const StepPositions& step, bool adds_whole_terms) {
  const int64_t rows = w.tokens.size(0);
  const at::Tensor local = ids - w.vocab_begin;
  const at::Tensor held = (local >= 0).logical_and(local < rows);
  at::Tensor out = at::embedding(w.tokens, at::where(held, local, at::zeros_like(local)))
                       .masked_fill(held.logical_not().unsqueeze(-1), 0);
  if (adds_whole_terms) out = out + w.positions.index_select(0, step.positions).unsqueeze(0);
  return out;
}

at::Tensor whisper_self_attention_forward(const WhisperDecoderConfig& config, const WhisperAttentionWeights& w,
                                          const at::Tensor& h, WhisperKvCache& cache, const StepPositions& step,
                                          bool adds_whole_terms) {
  if (!cache.k.defined()) throw std::logic_error("decoder self-attention runs before allocate()");
  const int64_t d = config.head_dim;
  const at::Tensor x = norm(h, w.norm, w.norm_bias);
  const at::Tensor q = heads_first(w.q.forward(x), d);
  cache.k.index_copy_(2, step.positions, heads_first(w.k.forward(x), d));
  cache.v.index_copy_(2, step.positions, heads_first(w.v.forward(x), d));
  const at::Tensor keys = cache.k.narrow(2, 0, step.attend_len);
  const at::Tensor values = cache.v.narrow(2, 0, step.attend_len);
  return attention_output(w, attend(q, keys, values, step.allowed), h, adds_whole_terms);
}

at::Tensor whisper_cross_attention_forward(const WhisperDecoderConfig& config, const WhisperAttentionWeights& w,
                                           const WhisperKvProjection& kv, const at::Tensor& h,
                                           const at::Tensor& encoder_states, WhisperKvCache& cache,
                                           bool adds_whole_terms) {
  if (!cache.k.defined()) throw std::logic_error("decoder cross-attention runs before allocate()");
  const int64_t d = config.head_dim;
  if (encoder_states.defined()) {
    const int64_t frames = encoder_states.size(1);
    if (encoder_states.size(0) != cache.k.size(0) || frames > cache.k.size(2)) {
      throw std::invalid_argument("cross-attention: encoder states of " + std::to_string(encoder_states.size(0)) +
                                  " requests x " + std::to_string(frames) + " frames do not fit its cache of " +
                                  std::to_string(cache.k.size(0)) + " requests x " + std::to_string(cache.k.size(2)) +
                                  " frames");
    }
    // One projection for k and v: [requests, frames, 2 * heads held * d], k first.
    const at::Tensor both = at::linear(encoder_states.to(kv.weight.scalar_type()), kv.weight, kv.bias);
    const int64_t half = both.size(-1) / 2;
    cache.k.narrow(2, 0, frames).copy_(heads_first(both.narrow(-1, 0, half), d));
    cache.v.narrow(2, 0, frames).copy_(heads_first(both.narrow(-1, half, half), d));
    cache.frames = frames;
  } else if (cache.frames == 0) {
    throw std::logic_error("cross-attention decodes before any prefill gave it the encoder states");
  }
  const at::Tensor x = norm(h, w.norm, w.norm_bias);
  const at::Tensor q = heads_first(w.q.forward(x), d);
  const at::Tensor keys = cache.k.narrow(2, 0, cache.frames);
  const at::Tensor values = cache.v.narrow(2, 0, cache.frames);
  return attention_output(w, attend(q, keys, values, at::Tensor()), h, adds_whole_terms);
}

at::Tensor whisper_lm_head_forward(const WhisperLmHeadWeights& w, const at::Tensor& h) {
  const at::Tensor last = h.select(1, h.size(1) - 1);
  return at::linear(norm(last, w.norm, w.norm_bias), w.weight);
}

WhisperModel::WhisperModel(const ModelGraph& graph, const TensorShards& shards)
    : config_(whisper_decoder_config(graph.typed_config<WhisperConfig>())), encoder_(graph, shards) {
  for (const Module& m : graph.modules) {
    const ModuleWeights w(m, shards);
    ModuleState s;
    s.kind = m.kind;
    s.path = m.path;
    switch (m.kind) {
      case ModuleKind::kEncoder: break;  // encoder_
      case ModuleKind::kEmbedding: {
        const TensorShard& tokens = w.at({ParamRole::kEmbedding});
        s.embedding.tokens = tokens.tensor;
        s.embedding.vocab_begin = tokens.offset.at(0);
        s.embedding.positions = w.weight(ParamRole::kPositionEmbedding);
        break;
      }
      case ModuleKind::kAttention: s.attention = whisper_attention_weights(w); break;
      case ModuleKind::kCrossAttention:
        s.attention = whisper_attention_weights(w);
        s.kv = whisper_fused_kv(s.attention);
        // NOTE: the separate k/v projections are dropped once fused, so the rank holds them once.
        s.attention.k = ColumnParallelLinear{};
        s.attention.v = ColumnParallelLinear{};
        break;
      case ModuleKind::kMlp: s.mlp = whisper_mlp_weights(w); break;
      case ModuleKind::kLmHead: {
        s.lm_head.norm = w.weight(ParamRole::kFinalNorm);
        s.lm_head.norm_bias = w.bias(ParamRole::kFinalNorm);
        const TensorShard* own = w.find({ParamRole::kLmHead});
        s.lm_head.weight = own ? own->tensor : tensor_of(shards, graph.tied_lm_head_to.value_or(m.path));
        break;
      }
      default:
        throw ConfigError(std::string("module ") + m.path + " of kind " + to_string(m.kind) +
                          " is not part of the whisper forward");
    }
    modules_.push_back(std::move(s));
  }
}

void WhisperModel::allocate(const std::vector<int64_t>& requests, int64_t capacity) {
  if (capacity > config_.max_target_positions) {
    throw ConfigError("whisper's decoder holds at most max_target_positions = " +
                      std::to_string(config_.max_target_positions) + " positions per request (embed_positions' rows), " +
                      "but the run needs a capacity of " + std::to_string(capacity));
  }
  for (size_t i = 0; i < modules_.size(); ++i) {
    ModuleState& s = modules_[i];
    if (s.kind != ModuleKind::kAttention && s.kind != ModuleKind::kCrossAttention) continue;
    const int64_t heads = s.attention.q.weight.size(0) / config_.head_dim;
    const int64_t positions = s.kind == ModuleKind::kAttention ? capacity : config_.max_source_positions;
    // NOTE: zero-filled, not empty: rows past the current position are masked out of the scores,
    // but their values still meet a zero probability in probs @ v, and 0 * NaN would be NaN.
    const auto options = s.attention.q.weight.options();
    s.cache.k = at::zeros({requests.at(i), heads, positions, config_.head_dim}, options);
    s.cache.v = at::zeros({requests.at(i), heads, positions, config_.head_dim}, options);
    s.cache.frames = 0;
  }
}

StepPositions WhisperModel::step_positions(int64_t first, int64_t tokens, int64_t attend_len,
                                           at::Device device) const {
  const auto i64 = at::TensorOptions().dtype(at::kLong).device(device);
  StepPositions step;
  step.positions = at::arange(first, first + tokens, i64);
  step.attend_len = attend_len;
  step.allowed = at::arange(attend_len, i64).unsqueeze(0) <= step.positions.unsqueeze(1);
  return step;
}

at::Tensor WhisperModel::forward(size_t i, const ModuleInputs& in, const StepPositions& step, bool adds_whole_terms,
                                 ModuleComm* comm) {
  ModuleState& s = modules_.at(i);
  switch (s.kind) {
    case ModuleKind::kEncoder:
      return encoder_.encode(in.main, adds_whole_terms, [comm](const std::string& child_path, at::Tensor x) {
        return comm ? comm->after_block(child_path, std::move(x)) : x;
      });
    case ModuleKind::kEmbedding: return whisper_embedding_forward(s.embedding, in.main, step, adds_whole_terms);
    case ModuleKind::kAttention:
      return whisper_self_attention_forward(config_, s.attention, in.main, s.cache, step, adds_whole_terms);
    case ModuleKind::kCrossAttention:
      return whisper_cross_attention_forward(config_, s.attention, s.kv, in.main, in.side, s.cache, adds_whole_terms);
    case ModuleKind::kMlp: return whisper_mlp_forward(s.mlp, in.main, adds_whole_terms);
    case ModuleKind::kLmHead: return whisper_lm_head_forward(s.lm_head, in.main);
    default: break;
  }
  throw std::logic_error("module kind outside the whisper forward");
}

}  // namespace shardplan
