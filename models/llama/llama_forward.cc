// The Llama-family forward on a rank's shards (see llama_forward.h).
#include "models/llama/llama_forward.h"

#include <ATen/ATen.h>

#include <cmath>
#include <stdexcept>
#include <utility>
#include <vector>

#include "models/graph/model_graph.h"

namespace shardplan {
namespace {

const nlohmann::json* object_at(const nlohmann::json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end() || !it->is_object()) return nullptr;
  return &*it;
}

double number_or(const nlohmann::json& object, const char* key, double fallback) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_number()) {
    throw ConfigError(std::string("config field '") + key + "' must be a number, got " + it->dump());
  }
  return it->get<double>();
}

// transformers' rtruediv (`scalar / tensor`) is reciprocal(tensor) * scalar; so is this, to give
// the same float32 bits.
at::Tensor scalar_over(double scalar, const at::Tensor& t) { return at::reciprocal(t) * scalar; }

}  // namespace

LlamaConfig read_llama_config(const nlohmann::json& config) {
  LlamaConfig c;
  c.model_type = config.value("model_type", std::string("llama"));
  c.hidden = size_of(config, "hidden_size");
  c.intermediate = size_of(config, "intermediate_size");
  c.heads = size_of(config, "num_attention_heads");
  c.kv_heads = size_of(config, "num_key_value_heads");
  c.head_dim = size_of(config, "head_dim");
  c.vocab = size_of(config, "vocab_size");
  c.layers = size_of(config, "num_hidden_layers");
  c.max_positions = size_of(config, "max_position_embeddings");
  c.rms_norm_eps = number_or(config, "rms_norm_eps", 1e-6);

  const std::string act = config.value("hidden_act", std::string("silu"));
  if (act != "silu") {
    throw ConfigError("hidden_act '" + act + "' is not supported by the executor yet (llama family: silu)");
  }
  if (c.head_dim % 2 != 0) {
    throw ConfigError("head_dim " + std::to_string(c.head_dim) + " is odd: RoPE needs an even head_dim");
  }

  // RoPE: transformers 5 keeps everything in `rope_parameters`; older configs have `rope_theta`
  // and `rope_scaling` (whose type key was once `type`).
  const nlohmann::json* params = object_at(config, "rope_parameters");
  if (!params) params = object_at(config, "rope_scaling");
  c.rope.theta = number_or(config, "rope_theta", 10000.0);
  if (params) {
    c.rope.theta = number_or(*params, "rope_theta", c.rope.theta);
    if (params->contains("rope_type") && (*params)["rope_type"].is_string()) {
      c.rope.type = (*params)["rope_type"].get<std::string>();
    } else if (params->contains("type") && (*params)["type"].is_string()) {
      c.rope.type = (*params)["type"].get<std::string>();
    }
    c.rope.factor = number_or(*params, "factor", 1.0);
    c.rope.low_freq_factor = number_or(*params, "low_freq_factor", 1.0);
    c.rope.high_freq_factor = number_or(*params, "high_freq_factor", 4.0);
    c.rope.original_max_positions = static_cast<int64_t>(
        number_or(*params, "original_max_position_embeddings", static_cast<double>(c.max_positions)));
    if (c.rope.type == "llama3" &&
        (!params->contains("factor") || !params->contains("low_freq_factor") ||
         !params->contains("high_freq_factor"))) {
      throw ConfigError("rope type 'llama3' needs factor, low_freq_factor and high_freq_factor");
    }
    if (c.rope.type == "llama3" && c.rope.high_freq_factor == c.rope.low_freq_factor) {
      throw ConfigError("rope type 'llama3': high_freq_factor equals low_freq_factor");
    }
  }
  if (c.rope.type != "default" && c.rope.type != "linear" && c.rope.type != "llama3") {
    throw ConfigError("rope type '" + c.rope.type +
                      "' is not supported by the executor yet (supported: default, linear, llama3)");
  }

  if (c.model_type == "mistral" || c.model_type == "mixtral") {
    auto it = config.find("sliding_window");
    if (it != config.end() && it->is_number_integer()) c.sliding_window = it->get<int64_t>();
  } else if (c.model_type == "qwen2" && config.value("use_sliding_window", false)) {
    throw ConfigError("qwen2 with use_sliding_window is not supported by the executor yet");
  }
  return c;
}

at::Tensor llama_rope_inv_freq(const LlamaConfig& config, at::Device device) {
  const int64_t dim = config.head_dim;
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
  // _compute_default_rope_parameters: 1.0 / (base ** (arange(0, dim, 2).float() / dim))
  const at::Tensor exponent = at::arange(0, dim, 2, f32.dtype(at::kLong)).to(at::kFloat) / dim;
  at::Tensor inv_freq = at::reciprocal(at::pow(config.rope.theta, exponent));
  const LlamaRope& r = config.rope;
  if (r.type == "linear") return inv_freq / r.factor;
  if (r.type != "llama3") return inv_freq;

  // _compute_llama3_parameters, operation for operation.
  const double old_context_len = static_cast<double>(r.original_max_positions);
  const double low_freq_wavelen = old_context_len / r.low_freq_factor;
  const double high_freq_wavelen = old_context_len / r.high_freq_factor;
  const at::Tensor wavelen = scalar_over(2 * M_PI, inv_freq);
  // wavelen < high_freq_wavelen: as is; wavelen > low_freq_wavelen: divided by factor
  at::Tensor inv_freq_llama = at::where(wavelen > low_freq_wavelen, inv_freq / r.factor, inv_freq);
  // in between: interpolated with a smooth factor
  const at::Tensor smooth_factor =
      (scalar_over(old_context_len, wavelen) - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
  const at::Tensor smoothed_inv_freq =
      (1 - smooth_factor) * inv_freq_llama / r.factor + smooth_factor * inv_freq_llama;
  const at::Tensor is_medium_freq =
      at::logical_not(wavelen < high_freq_wavelen).logical_and(at::logical_not(wavelen > low_freq_wavelen));
  return at::where(is_medium_freq, smoothed_inv_freq, inv_freq_llama);
}

RopeTable llama_rope_table(const LlamaConfig& config, int64_t positions, at::Device device) {
  // NOTE: computed on the CPU and copied, so every device runs with the same table.
  const at::Tensor inv_freq = llama_rope_inv_freq(config, at::kCPU);
  const at::Tensor pos = at::arange(positions, at::TensorOptions().dtype(at::kLong)).to(at::kFloat);
  // transformers: inv_freq[:, None] @ position[None, :] (one product per element), transposed.
  const at::Tensor freqs = at::outer(pos, inv_freq);
  const at::Tensor emb = at::cat({freqs, freqs}, -1);
  // NOTE: attention_scaling is 1 for default, linear and llama3, so cos and sin are not scaled.
  return {emb.cos().to(device), emb.sin().to(device)};
}

at::Tensor llama_rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::Tensor x32 = x.to(at::kFloat);
  const at::Tensor variance = x32.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (x32 * at::rsqrt(variance + eps)).to(x.scalar_type());
}

at::Tensor llama_apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  const at::Tensor rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos.to(x.scalar_type()) + rotated * sin.to(x.scalar_type());
}

StepPositions llama_step_positions(int64_t first, int64_t tokens, int64_t attend_len,
                                   std::optional<int64_t> sliding_window, at::Device device) {
  const auto i64 = at::TensorOptions().dtype(at::kLong).device(device);
  StepPositions step;
  step.positions = at::arange(first, first + tokens, i64);
  step.attend_len = attend_len;
  const at::Tensor keys = at::arange(attend_len, i64).unsqueeze(0);  // [1, L]
  const at::Tensor queries = step.positions.unsqueeze(1);            // [T, 1]
  step.allowed = keys <= queries;
  if (sliding_window) {
    // transformers' sliding_window_overlay: key > query - window.
    step.allowed = step.allowed.logical_and(keys > queries - *sliding_window);
  }
  return step;
}

KvCache llama_make_kv_cache(const LlamaConfig& config, const LlamaAttentionWeights& w,
                            int64_t requests, int64_t capacity) {
  const int64_t d = config.head_dim;
  const int64_t q_heads = w.q.size(0) / d;
  const int64_t kv_heads = w.k.size(0) / d;
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
  const auto options = w.k.options();
  cache.k = at::zeros({requests, kv_heads, capacity, d}, options);
  cache.v = at::zeros({requests, kv_heads, capacity, d}, options);
  cache.head_map = at::tensor(head_map, at::TensorOptions().dtype(at::kLong)).to(w.k.device());
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

at::Tensor llama_attention_forward(const LlamaConfig& config, const LlamaAttentionWeights& w,
                                   const at::Tensor& h, KvCache& cache, const StepPositions& step,
                                   const RopeTable& rope, bool adds_whole_terms) {
  const int64_t b = h.size(0), t = h.size(1), d = config.head_dim;
  const at::Tensor x = llama_rms_norm(h, w.norm, config.rms_norm_eps);
  const auto heads_first = [&](const at::Tensor& y) { return y.view({b, t, -1, d}).transpose(1, 2); };
  const at::Tensor cos = rope.cos.index_select(0, step.positions);
  const at::Tensor sin = rope.sin.index_select(0, step.positions);
  const at::Tensor q = llama_apply_rope(heads_first(at::linear(x, w.q, w.q_bias)), cos, sin);
  const at::Tensor k = llama_apply_rope(heads_first(at::linear(x, w.k, w.k_bias)), cos, sin);
  const at::Tensor v = heads_first(at::linear(x, w.v, w.v_bias));
  cache.k.index_copy_(2, step.positions, k);
  cache.v.index_copy_(2, step.positions, v);

  // Keys and values of every local q head: [b, q heads, L, d].
  const at::Tensor keys = cache.k.narrow(2, 0, step.attend_len).index_select(1, cache.head_map);
  const at::Tensor values = cache.v.narrow(2, 0, step.attend_len).index_select(1, cache.head_map);
  const at::Tensor attended = at::scaled_dot_product_attention(q, keys, values, step.allowed);
  const at::Tensor merged = attended.transpose(1, 2).reshape({b, t, -1});
  at::Tensor out = at::linear(merged, w.o, adds_whole_terms ? w.o_bias : at::Tensor());
  if (adds_whole_terms) out = out + h;
  return out;
}

at::Tensor llama_mlp_forward(const LlamaConfig& config, const LlamaMlpWeights& w, const at::Tensor& h,
                             bool adds_whole_terms) {
  const at::Tensor x = llama_rms_norm(h, w.norm, config.rms_norm_eps);
  const at::Tensor inner = at::silu(at::linear(x, w.gate, w.gate_bias)) * at::linear(x, w.up, w.up_bias);
  at::Tensor out = at::linear(inner, w.down, adds_whole_terms ? w.down_bias : at::Tensor());
  if (adds_whole_terms) out = out + h;
  return out;
}

at::Tensor llama_lm_head_forward(const LlamaConfig& config, const LlamaLmHeadWeights& w,
                                 const at::Tensor& h) {
  const at::Tensor last = h.select(1, h.size(1) - 1);
  return at::linear(llama_rms_norm(last, w.norm, config.rms_norm_eps), w.weight);
}

namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Assigns the shard of `name` to the field its suffix names, e.g. "...q_proj.bias" -> q_bias.
void bind_by_suffix(const std::string& module_path, const std::string& name, const TensorShards& shards,
                    const std::vector<std::pair<std::string, at::Tensor*>>& fields) {
  for (const auto& [suffix, field] : fields) {
    if (ends_with(name, suffix)) {
      *field = shard_of(shards, name).tensor;
      return;
    }
  }
  throw std::invalid_argument("module " + module_path + " has a tensor the llama forward does not know: " + name);
}

}  // namespace

LlamaEmbeddingWeights llama_embedding_weights(const Module& m, const TensorShards& shards) {
  const TensorShard& w = shard_of(shards, m.params.at(0).name);
  LlamaEmbeddingWeights e;
  e.weight = w.tensor;
  e.vocab_begin = w.offset.at(0);
  return e;
}

LlamaAttentionWeights llama_attention_weights(const LlamaConfig& config, const Module& m, const TensorShards& shards) {
  LlamaAttentionWeights a;
  for (const Param& p : m.params) {
    bind_by_suffix(m.path, p.name, shards,
                   {{".input_layernorm.weight", &a.norm}, {".q_proj.weight", &a.q}, {".k_proj.weight", &a.k},
                    {".v_proj.weight", &a.v}, {".o_proj.weight", &a.o}, {".q_proj.bias", &a.q_bias},
                    {".k_proj.bias", &a.k_bias}, {".v_proj.bias", &a.v_bias}, {".o_proj.bias", &a.o_bias}});
    if (ends_with(p.name, ".q_proj.weight")) {
      a.q_head_begin = shard_of(shards, p.name).offset.at(0) / config.head_dim;
    } else if (ends_with(p.name, ".k_proj.weight")) {
      a.kv_head_begin = shard_of(shards, p.name).offset.at(0) / config.head_dim;
    }
  }
  return a;
}

LlamaLmHeadWeights llama_lm_head_weights(const ModelGraph& graph, const Module& m, const TensorShards& shards) {
  LlamaLmHeadWeights h;
  for (const Param& p : m.params) {
    bind_by_suffix(m.path, p.name, shards, {{"lm_head.weight", &h.weight}, {"norm.weight", &h.norm}});
  }
  if (!h.weight.defined() && graph.tied_lm_head_to) h.weight = shard_of(shards, *graph.tied_lm_head_to).tensor;
  return h;
}

LlamaModel::LlamaModel(const ModelGraph& graph, const TensorShards& shards)
    : config_(read_llama_config(graph.config)) {
  for (const Module& m : graph.modules) {
    ModuleState s;
    s.kind = m.kind;
    switch (m.kind) {
      case ModuleKind::kEmbedding: s.embedding = llama_embedding_weights(m, shards); break;
      case ModuleKind::kAttention: s.attention = llama_attention_weights(config_, m, shards); break;
      case ModuleKind::kMlp: {
        LlamaMlpWeights& f = s.mlp;
        for (const Param& p : m.params) {
          bind_by_suffix(m.path, p.name, shards,
                         {{".post_attention_layernorm.weight", &f.norm}, {".gate_proj.weight", &f.gate},
                          {".up_proj.weight", &f.up}, {".down_proj.weight", &f.down}, {".gate_proj.bias", &f.gate_bias},
                          {".up_proj.bias", &f.up_bias}, {".down_proj.bias", &f.down_bias}});
        }
        break;
      }
      case ModuleKind::kLmHead: s.lm_head = llama_lm_head_weights(graph, m, shards); break;
      default:
        throw ConfigError(std::string("module ") + m.path + " of kind " + to_string(m.kind) +
                          " is not part of the llama forward");
    }
    modules_.push_back(std::move(s));
  }
}

void LlamaModel::allocate(const std::vector<int64_t>& requests, int64_t capacity) {
  at::Device device = at::kCPU;
  for (size_t i = 0; i < modules_.size(); ++i) {
    ModuleState& s = modules_[i];
    if (s.kind != ModuleKind::kAttention) continue;
    s.cache = llama_make_kv_cache(config_, s.attention, requests.at(i), capacity);
    device = s.attention.q.device();
  }
  rope_ = llama_rope_table(config_, capacity, device);
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

ModelGraph llama_subgraph(const ModelGraph& graph, const nlohmann::json& config,
                          const std::function<bool(const Module&)>& is_llama) {
  ModelGraph part = graph;
  part.config = config;
  part.modules.clear();
  for (const Module& m : graph.modules) {
    if (is_llama(m)) part.modules.push_back(m);
  }
  return part;
}

}  // namespace

LlamaPart::LlamaPart(const ModelGraph& graph, const nlohmann::json& config, const TensorShards& shards,
                     const std::function<bool(const Module&)>& is_llama)
    : model_(std::make_unique<LlamaModel>(llama_subgraph(graph, config, is_llama), shards)) {
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
