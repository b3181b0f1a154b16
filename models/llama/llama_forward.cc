// The Llama-family forward on a rank's shards (see llama_forward.h).
#include "models/llama/llama_forward.h"

#include <ATen/ATen.h>

#include <cmath>
#include <stdexcept>
#include <utility>
#include <vector>

#include "models/graph/model_graph.h"
#include "models/layers/attention.h"
#include "models/layers/fused.h"
#include "models/layers/norm.h"

namespace shardplan {
StepPositions llama_step_positions(int64_t first, int64_t tokens, int64_t attend_len,
                                   std::optional<int64_t> sliding_window, at::Device device) {
  const auto i64 = at::TensorOptions().dtype(at::kLong).device(device);
  StepPositions step;
  step.positions = at::arange(first, first + tokens, i64);
  step.attend_len = attend_len;
  const at::Tensor keys = at::arange(attend_len, i64).unsqueeze(0);  // [1, L]
  const at::Tensor queries = step.positions.unsqueeze(1);            // [T, 1]
  step.allowed = keys <= queries;
  step.causal = first == 0 && tokens == attend_len;
  if (sliding_window) {
    // transformers' sliding_window_overlay: key > query - window.
    step.allowed = step.allowed.logical_and(keys > queries - *sliding_window);
    step.window = *sliding_window;
    step.causal = step.causal && tokens <= *sliding_window;
  }
  return step;
}

KvCache llama_make_kv_cache(const LlamaConfig& config, const LlamaAttentionWeights& w,
                            int64_t requests, int64_t capacity) {
  const int64_t d = config.head_dim;
  const int64_t q_heads = w.q.weight.size(0) / d;
  const int64_t kv_heads = w.k.weight.size(0) / d;
  const int64_t q_per_kv = config.heads / config.kv_heads;
  // Local q head i reads global KV head (q_head_begin + i) / q_per_kv, which must be one this rank
  // holds (the plan's slices guarantee it; a mismatch is a bug, not a user error).
  std::vector<int64_t> head_map(q_heads);
  for (int64_t i = 0; i < q_heads; ++i) {
    const int64_t local = (w.q_head_begin + i) / q_per_kv - w.kv_head_begin;
    if (local < 0 || local >= kv_heads) {
      throw std::logic_error("q head " + std::to_string(w.q_head_begin + i) + " needs KV head " +
                             std::to_string((w.q_head_begin + i) / q_per_kv) + ", but this rank holds KV heads [" +
                             std::to_string(w.kv_head_begin) + ", " + std::to_string(w.kv_head_begin + kv_heads) + ")");
    }
    head_map[i] = local;
  }
  KvCache cache;
  // NOTE: zero-filled, not empty: rows past the current position are masked out of the scores,
  // but their values still meet a zero probability in probs @ v, and 0 * NaN would be NaN.
  const auto options = w.k.weight.options();
  cache.k_all = at::zeros({requests, kv_heads, capacity, d}, options);
  cache.v_all = at::zeros({requests, kv_heads, capacity, d}, options);
  cache.k = cache.k_all;
  cache.v = cache.v_all;
  cache.head_map = at::tensor(head_map, at::TensorOptions().dtype(at::kLong)).to(w.k.weight.device());
  cache.grouped = q_heads % kv_heads == 0;
  for (int64_t i = 0; cache.grouped && i < q_heads; ++i) cache.grouped = head_map[i] == i / (q_heads / kv_heads);
  return cache;
}

at::Tensor llama_embedding_forward(const LlamaConfig& config, const LlamaEmbeddingWeights& w,
                                   const at::Tensor& ids) {
  const int64_t rows = w.weight.size(0);
  if (w.vocab_begin == 0 && rows == config.vocab) return at::embedding(w.weight, ids);
  const at::Tensor local = ids - w.vocab_begin;
  const at::Tensor held = (local >= 0).logical_and(local < rows);
  const at::Tensor out = at::embedding(w.weight, at::where(held, local, at::zeros_like(local)));
  return out.masked_fill(held.logical_not().unsqueeze(-1), 0);
}

namespace {

// Attention of `q` [b, q heads, T, d] over the cache rows [0, attend_len) with the step's mask:
// grouped-query SDPA when the rank's q heads map to its KV heads in blocks, else the keys and
// values of every local q head gathered first. Both forward paths end in it.
at::Tensor attend_cache(const at::Tensor& q, const KvCache& cache, const StepPositions& step) {
  if (cache.grouped) {
    return attend_grouped(q, cache.k.narrow(2, 0, step.attend_len), cache.v.narrow(2, 0, step.attend_len),
                          step.allowed);
  }
  // Keys and values of every local q head: [b, q heads, L, d].
  const at::Tensor keys = cache.k.narrow(2, 0, step.attend_len).index_select(1, cache.head_map);
  const at::Tensor values = cache.v.narrow(2, 0, step.attend_len).index_select(1, cache.head_map);
  return attend(q, keys, values, step.allowed);
}

// llama_attention_forward on CUDA with the executor's kernels: one kernel for RoPE and the cache
// writes; in decode one for the attention over the filled rows only, in a whole-prompt prefill
// scaled_dot_product_attention's causal (flash) kernel without a mask.
at::Tensor llama_attention_fused(const LlamaConfig& config, const LlamaAttentionWeights& w, const at::Tensor& x,
                                 const at::Tensor& h, KvCache& cache, const StepPositions& step,
                                 const RopeTable& rope, bool adds_whole_terms) {
  const int64_t d = config.head_dim;
  const int64_t q_heads = w.q.weight.size(0) / d, kv_heads = w.k.weight.size(0) / d;
  const at::Tensor q =
      fused_rope_and_cache(w.qkv.forward(x), q_heads, kv_heads, rope.cos, rope.sin, step.positions, cache.k, cache.v);
  at::Tensor attended;
  const int64_t tokens = step.positions.size(0);
  if (tokens == 1 && fused_decode_attention_supports(d, q_heads, kv_heads, cache.grouped)) {
    attended = fused_decode_attention(q, cache.k, cache.v, step.positions, step.window,
                                      cache.grouped ? at::Tensor() : cache.head_map, 1.0 / std::sqrt(double(d)), 0,
                                      step.first);
  } else if (step.causal && cache.grouped) {
    const at::Tensor keys = cache.k.narrow(2, 0, step.attend_len), values = cache.v.narrow(2, 0, step.attend_len);
    attended = at::scaled_dot_product_attention(q, keys, values, std::nullopt, 0.0, /*is_causal=*/true, std::nullopt,
                                                /*enable_gqa=*/q_heads != kv_heads);
  } else {
    attended = attend_cache(q, cache, step);
  }
  // NOTE: the residual stream `h` is consumed: o's GEMM accumulates into it.
  if (adds_whole_terms && h.is_contiguous()) return w.o.add_into(h, heads_merged(attended));
  at::Tensor out = w.o.forward(heads_merged(attended), adds_whole_terms);
  if (adds_whole_terms) out.add_(h);
  return out;
}

}  // namespace

at::Tensor llama_attention_forward(const LlamaConfig& config, const LlamaAttentionWeights& w,
                                   const at::Tensor& h, KvCache& cache, const StepPositions& step,
                                   const RopeTable& rope, bool adds_whole_terms) {
  const int64_t d = config.head_dim;
  const at::Tensor x = rms_norm(h, w.norm, config.rms_norm_eps);
  if (w.qkv.weight.defined() && fused_kernels_for(x)) return llama_attention_fused(config, w, x, h, cache, step, rope, adds_whole_terms);
  const at::Tensor cos = rope.cos.index_select(0, step.positions);
  const at::Tensor sin = rope.sin.index_select(0, step.positions);
  at::Tensor q, k, v;
  if (w.qkv.weight.defined()) {
    const at::Tensor all = w.qkv.forward(x);  // one GEMM: [b, t, q rows + 2 kv rows]
    const int64_t nq = w.q.weight.size(0), nk = w.k.weight.size(0);
    // q and k are adjacent: one rotation for the heads of both.
    const at::Tensor qk = apply_rope(heads_first(all.narrow(-1, 0, nq + nk), d), cos, sin);
    q = qk.narrow(1, 0, nq / d);
    k = qk.narrow(1, nq / d, nk / d);
    v = heads_first(all.narrow(-1, nq + nk, nk), d);
  } else {
    q = apply_rope(heads_first(w.q.forward(x), d), cos, sin);
    k = apply_rope(heads_first(w.k.forward(x), d), cos, sin);
    v = heads_first(w.v.forward(x), d);
  }
  cache.k.index_copy_(2, step.positions, k);
  cache.v.index_copy_(2, step.positions, v);

  const at::Tensor attended = attend_cache(q, cache, step);
  at::Tensor out = w.o.forward(heads_merged(attended), adds_whole_terms);
  if (adds_whole_terms) out = out + h;
  return out;
}

at::Tensor llama_mlp_forward(const LlamaConfig& config, const LlamaMlpWeights& w, const at::Tensor& h,
                             bool adds_whole_terms) {
  if (adds_whole_terms && w.gate_up.weight.defined() && fused_kernels_for(h) && h.is_contiguous()) {
    // The CUDA path: silu * up in one kernel, and down's GEMM accumulating into the residual
    // stream `h` (consumed).
    return w.down.add_into(h, fused_silu_mul(w.gate_up.forward(rms_norm(h, w.norm, config.rms_norm_eps))));
  }
  at::Tensor out = llama_gated_mlp(w, rms_norm(h, w.norm, config.rms_norm_eps), adds_whole_terms);
  if (adds_whole_terms) out = out + h;
  return out;
}

at::Tensor llama_gated_mlp(const LlamaMlpWeights& w, const at::Tensor& x, bool adds_bias) {
  if (w.gate_up.weight.defined()) {
    const at::Tensor both = w.gate_up.forward(x);  // one GEMM: [..., 2 * intermediate held]
    const int64_t n = w.gate.weight.size(0);
    if (fused_kernels_for(both)) return w.down.forward(fused_silu_mul(both), adds_bias);
    return w.down.forward(at::silu(both.narrow(-1, 0, n)) * both.narrow(-1, n, n), adds_bias);
  }
  return w.down.forward(at::silu(w.gate.forward(x)) * w.up.forward(x), adds_bias);
}

at::Tensor llama_lm_head_forward(const LlamaConfig& config, const LlamaLmHeadWeights& w,
                                 const at::Tensor& h) {
  const at::Tensor last = rms_norm(h.select(1, h.size(1) - 1), w.norm, config.rms_norm_eps);
  if (fused_linear_supports(last, w.weight)) return fused_linear(last, w.weight, at::Tensor());
  return at::linear(last, w.weight);
}

LlamaEmbeddingWeights llama_embedding_weights(const ModuleWeights& w) {
  const TensorShard& table = w.at({ParamRole::kEmbedding});
  return {table.tensor, table.offset.at(0)};
}

LlamaAttentionWeights llama_attention_weights(const LlamaConfig& config, const ModuleWeights& w) {
  LlamaAttentionWeights a;
  a.norm = w.weight(ParamRole::kNorm);
  a.q = column_parallel(w, {ParamRole::kQuery});
  a.k = column_parallel(w, {ParamRole::kKey});
  a.v = column_parallel(w, {ParamRole::kValue});
  a.o = row_parallel(w, {ParamRole::kOutput});
  a.q_head_begin = a.q.out_begin / config.head_dim;
  a.kv_head_begin = a.k.out_begin / config.head_dim;
  a.qkv = fuse_columns({&a.q, &a.k, &a.v});
  return a;
}

LlamaMlpWeights llama_mlp_weights(const ModuleWeights& w, bool shared_expert) {
  LlamaMlpWeights f;
  if (!shared_expert) f.norm = w.weight(ParamRole::kNorm);
  f.gate = column_parallel(w, {ParamRole::kGate, false, -1, shared_expert});
  f.up = column_parallel(w, {ParamRole::kUp, false, -1, shared_expert});
  f.down = row_parallel(w, {ParamRole::kDown, false, -1, shared_expert});
  f.gate_up = fuse_columns({&f.gate, &f.up});
  return f;
}

LlamaLmHeadWeights llama_lm_head_weights(const ModelGraph& graph, const ModuleWeights& w, const TensorShards& shards) {
  LlamaLmHeadWeights h;
  h.norm = w.weight(ParamRole::kFinalNorm);
  if (const TensorShard* own = w.find({ParamRole::kLmHead})) {
    h.weight = own->tensor;
  } else if (graph.tied_lm_head_to) {
    h.weight = shard_of(shards, *graph.tied_lm_head_to).tensor;
  } else {
    throw std::invalid_argument("module " + w.module().path + " has no output projection");
  }
  return h;
}

LlamaModel::LlamaModel(const ModelGraph& graph, const LlamaConfig& config, const TensorShards& shards)
    : config_(config) {
  require_executor_support(config_);
  for (const Module& m : graph.modules) {
    const ModuleWeights w(m, shards);
    ModuleState s;
    s.kind = m.kind;
    switch (m.kind) {
      case ModuleKind::kEmbedding: s.embedding = llama_embedding_weights(w); break;
      case ModuleKind::kAttention: s.attention = llama_attention_weights(config_, w); break;
      case ModuleKind::kMlp: s.mlp = llama_mlp_weights(w); break;
      case ModuleKind::kLmHead: s.lm_head = llama_lm_head_weights(graph, w, shards); break;
      default:
        throw ConfigError(std::string("module ") + m.path + " of kind " + to_string(m.kind) +
                          " is not part of the llama forward");
    }
    modules_.push_back(std::move(s));
  }
}

void LlamaModel::allocate(const std::vector<int64_t>& requests, int64_t capacity) {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
  for (size_t i = 0; i < modules_.size(); ++i) {
    ModuleState& s = modules_[i];
    if (s.kind != ModuleKind::kAttention) continue;
    s.cache = llama_make_kv_cache(config_, s.attention, requests.at(i), capacity);
    device = s.attention.q.weight.device();
    dtype = s.attention.q.weight.scalar_type();
  }
  // NOTE: computed in float32 and cast to the activations' dtype once, as transformers casts
  // its cos and sin (cos.to(x.dtype)) before every rotation.
  rope_ = rope_table(config_.rope, config_.head_dim, capacity, device);
  rope_.cos = rope_.cos.to(dtype);
  rope_.sin = rope_.sin.to(dtype);
}

void llama_keep_cache_rows(KvCache& cache, const at::Tensor& rows) {
  const int64_t n = rows.size(0);
  // NOTE: index_select copies first, so rows moving to the front never overwrite rows still to move.
  cache.k_all.narrow(0, 0, n).copy_(cache.k.index_select(0, rows));
  cache.v_all.narrow(0, 0, n).copy_(cache.v.index_select(0, rows));
  cache.k = cache.k_all.narrow(0, 0, n);
  cache.v = cache.v_all.narrow(0, 0, n);
}

void LlamaModel::keep_rows(const at::Tensor& rows) {
  for (ModuleState& s : modules_) {
    if (s.kind == ModuleKind::kAttention) llama_keep_cache_rows(s.cache, rows);
  }
}

void LlamaModel::all_rows() {
  for (ModuleState& s : modules_) {
    if (s.kind != ModuleKind::kAttention) continue;
    s.cache.k = s.cache.k_all;
    s.cache.v = s.cache.v_all;
  }
}

StepPositions LlamaModel::step_positions(int64_t first, int64_t tokens, int64_t attend_len,
                                         at::Device device) const {
  return llama_step_positions(first, tokens, attend_len, config_.sliding_window, device);
}

at::Tensor LlamaModel::forward(size_t i, const ModuleInputs& in, const StepPositions& step, bool adds_whole_terms,
                               ModuleComm* /*comm*/) {
  ModuleState& s = modules_.at(i);
  const at::Tensor& input = in.main;
  switch (s.kind) {
    case ModuleKind::kEmbedding: return llama_embedding_forward(config_, s.embedding, input);
    case ModuleKind::kAttention:
      return llama_attention_forward(config_, s.attention, input, s.cache, step, rope_, adds_whole_terms);
    case ModuleKind::kMlp: return llama_mlp_forward(config_, s.mlp, input, adds_whole_terms);
    case ModuleKind::kLmHead: return llama_lm_head_forward(config_, s.lm_head, input);
    default: break;
  }
  throw std::logic_error("module kind outside the llama forward");
}

namespace {

ModelGraph llama_subgraph(const ModelGraph& graph, const std::function<bool(const Module&)>& is_llama) {
  ModelGraph part;
  part.family = graph.family;
  part.tied_lm_head_to = graph.tied_lm_head_to;
  for (const Module& m : graph.modules) {
    if (is_llama(m)) part.modules.push_back(m);
  }
  return part;
}

}  // namespace

LlamaPart::LlamaPart(const ModelGraph& graph, const LlamaConfig& config, const TensorShards& shards,
                     const std::function<bool(const Module&)>& is_llama)
    : model_(std::make_unique<LlamaModel>(llama_subgraph(graph, is_llama), config, shards)) {
  int64_t next = 0;
  for (const Module& m : graph.modules) index_.push_back(is_llama(m) ? next++ : -1);
}

void LlamaPart::allocate(const std::vector<int64_t>& requests, int64_t capacity) {
  std::vector<int64_t> own;
  for (size_t i = 0; i < requests.size(); ++i) {
    if (holds(i)) own.push_back(requests[i]);
  }
  model_->allocate(own, capacity);
}

at::Tensor LlamaPart::forward(size_t i, const ModuleInputs& in, const StepPositions& step, bool adds_whole_terms) {
  if (!holds(i)) throw std::logic_error("module " + std::to_string(i) + " is not one of the Llama modules");
  return model_->forward(static_cast<size_t>(index_[i]), in, step, adds_whole_terms, nullptr);
}

}  // namespace shardplan
