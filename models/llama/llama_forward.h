// The Llama / Mistral / Qwen2 forward on one rank's shards (libtorch): embedding, attention with a
// KV cache, MLP and lm_head, each on the slices the plan gave the rank. No communication here: a
// module under `tensor` returns its partial sum and the runtime runs the plan's collectives.
//
// Shapes: hidden states are [requests, tokens, hidden]; token ids [requests, tokens] (int64);
// logits [requests, vocab on this rank]. Every step has fixed shapes (prefill: the prompt; decode:
// one token against the whole preallocated cache, with a length mask), so CUDA graphs can capture
// a decode step later.
//
// Worked example, tiny-llama (8 heads, 2 KV heads, head_dim 32) under tensor over [tp] (size 4):
// rank 2 holds q heads [4, 6) (q_proj rows [128, 192)) and KV head 1 (k_proj rows [32, 64), the
// same rows as rank 3: KV heads are replicated when the group outruns them). Its local q heads 0
// and 1 are global heads 4 and 5; with 8 / 2 = 4 q heads per KV head both read KV head 4/4 = 1,
// which is local KV head 1 - 1 = 0.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/forward/family_model.h"
#include "models/forward/tensor_shard.h"
#include "models/graph/model_graph.h"
#include "models/layers/linear.h"
#include "models/layers/rope.h"
#include "models/layers/weights.h"
#include "models/llama/llama_config.h"

namespace shardplan {

// Causal (and, with a sliding window, windowed) positions for `tokens` tokens starting at `first`.
StepPositions llama_step_positions(int64_t first, int64_t tokens, int64_t attend_len,
                                   std::optional<int64_t> sliding_window, at::Device device);

// One module's weights on this rank, as loaded from the plan's slices (undefined tensors for
// absent biases). Row-parallel biases (o_proj, down_proj) are whole on every rank.
struct LlamaEmbeddingWeights {
  at::Tensor weight;          // [vocab rows held, hidden]
  int64_t vocab_begin = 0;    // first vocabulary row held (0 unless split)
};

// Fused at load time (an executor detail; the plan's slices say which rows the rank holds): q, k
// and v of the rank are one [q rows + 2 * kv rows, hidden] matrix `qkv` (one GEMM), and q, k, v
// are views of its row blocks; gate and up likewise in `gate_up`.
struct LlamaAttentionWeights {
  at::Tensor norm;                     // input_layernorm
  ColumnParallelLinear q, k, v;        // [heads held * head_dim, hidden] (views of qkv when fused)
  ColumnParallelLinear qkv;            // the fused projection (undefined: not fused)
  RowParallelLinear o;                 // [hidden, heads held * head_dim]
  int64_t q_head_begin = 0;            // first global q head held
  int64_t kv_head_begin = 0;           // first global KV head held
};

struct LlamaMlpWeights {
  at::Tensor norm;                     // post_attention_layernorm
  ColumnParallelLinear gate, up;       // [intermediate held, hidden] (views of gate_up when fused)
  ColumnParallelLinear gate_up;        // the fused projection (undefined: not fused)
  RowParallelLinear down;              // [hidden, intermediate held]
};

struct LlamaLmHeadWeights {
  at::Tensor norm;            // model.norm
  at::Tensor weight;          // [vocab rows held, hidden] (the embedding's slice when tied)
};

// One attention layer's cache on this rank: [requests, KV heads held, capacity, head_dim], and
// for each local q head the local KV head it reads.
struct KvCache {
  at::Tensor k, v;          // the running requests' rows: the first rows of k_all, v_all
  at::Tensor k_all, v_all;  // as allocated

  at::Tensor head_map;  // [q heads held] int64
  // Local q head i reads local KV head i / (q heads / KV heads), as scaled_dot_product_attention's
  // enable_gqa does: attention reads the cache as it is, without expanding it per q head.
  bool grouped = false;
};
KvCache llama_make_kv_cache(const LlamaConfig& config, const LlamaAttentionWeights& weights,
                            int64_t requests, int64_t capacity);
// FamilyModel::keep_rows for one cache: the rows `rows` of k, v copied to the front of k_all,
// v_all, and k, v those first rows.size(0) rows.
void llama_keep_cache_rows(KvCache& cache, const at::Tensor& rows);

// ids [requests, tokens] -> [requests, tokens, hidden]. With a vocabulary slice (tensor mode),
// ids outside [vocab_begin, vocab_begin + rows) give zero rows: the sum over the group is the
// whole lookup (a partial output).
at::Tensor llama_embedding_forward(const LlamaConfig& config, const LlamaEmbeddingWeights& w,
                                   const at::Tensor& ids);

// h + attention(input_layernorm(h)) on the rank's heads, writing this step's keys and values into
// `cache`. `adds_whole_terms`: add the residual h and the o_proj bias. Under tensor mode only
// group rank 0 of the partial axes does, so that the all-reduce sums them once (the others
// return o_proj's partial product alone).
at::Tensor llama_attention_forward(const LlamaConfig& config, const LlamaAttentionWeights& w,
                                   const at::Tensor& h, KvCache& cache, const StepPositions& step,
                                   const RopeTable& rope, bool adds_whole_terms);

// h + down(silu(gate(x)) * up(x)), x = post_attention_layernorm(h); `adds_whole_terms` as above
// (the residual and the down_proj bias).
at::Tensor llama_mlp_forward(const LlamaConfig& config, const LlamaMlpWeights& w, const at::Tensor& h,
                             bool adds_whole_terms);

// Logits of each request's last token: lm_head(norm(h[:, -1])) -> [requests, vocab rows held].
at::Tensor llama_lm_head_forward(const LlamaConfig& config, const LlamaLmHeadWeights& w,
                                 const at::Tensor& h);

// A module's weights bound by parameter role (a tied lm_head reads the embedding's tensor);
// std::invalid_argument when one is missing. Shared with families built on Llama's modules.
LlamaEmbeddingWeights llama_embedding_weights(const ModuleWeights& w);
LlamaAttentionWeights llama_attention_weights(const LlamaConfig& config, const ModuleWeights& w);
// The gated MLP of a dense layer (norm: the module's kNorm), or of a MoE's shared expert.
LlamaMlpWeights llama_mlp_weights(const ModuleWeights& w, bool shared_expert = false);
LlamaLmHeadWeights llama_lm_head_weights(const ModelGraph& graph, const ModuleWeights& w, const TensorShards& shards);

// down(silu(gate(x)) * up(x)) on the rank's slice; down's bias only with `adds_bias`. The gated
// MLP of a dense layer, an expert or a shared expert (no norm, no residual).
at::Tensor llama_gated_mlp(const LlamaMlpWeights& w, const at::Tensor& x, bool adds_bias);

// The whole decoder on one rank: the weights of every module of a llama / mistral / qwen2 graph
// from the rank's shards, the KV caches, and one call per module. The runtime walks the plan and
// calls forward(i, ...) for module i of graph.modules, with the plan's collectives in between.
class LlamaModel : public FamilyModel {
 public:
  // Binds each module's tensors by role (a tied lm_head reads the embedding's tensor), with
  // `config` (the graph's typed config, or llava's text_config). Throws ConfigError for a config
  // the forward does not support and std::invalid_argument when a tensor of the graph is
  // missing from `shards`.
  LlamaModel(const ModelGraph& graph, const LlamaConfig& config, const TensorShards& shards);
  LlamaModel(const ModelGraph& graph, const TensorShards& shards)
      : LlamaModel(graph, graph.typed_config<LlamaConfig>(), shards) {}

  const LlamaConfig& config() const { return config_; }

  // Allocates the caches: requests[i] is the number of requests attention module i computes on
  // (others are ignored), `capacity` the positions each request can hold (prompt + new tokens).
  void allocate(const std::vector<int64_t>& requests, int64_t capacity) override;

  StepPositions step_positions(int64_t first, int64_t tokens, int64_t attend_len, at::Device device) const override;

  // Module i: embedding ids -> hidden; attention, mlp hidden -> hidden; lm_head hidden ->
  // logits of the last position. `adds_whole_terms` as in llama_attention_forward. No module of
  // the llama family communicates inside (`comm` is unused).
  at::Tensor forward(size_t i, const ModuleInputs& in, const StepPositions& step, bool adds_whole_terms,
                     ModuleComm* comm) override;

  bool takes_ragged_prompts() const override { return true; }  // RoPE
  bool keeps_rows() const override { return true; }
  void keep_rows(const at::Tensor& rows) override;
  void all_rows() override;

 private:
  struct ModuleState {
    ModuleKind kind = ModuleKind::kEmbedding;
    LlamaEmbeddingWeights embedding;
    LlamaAttentionWeights attention;
    LlamaMlpWeights mlp;
    LlamaLmHeadWeights lm_head;
    KvCache cache;
  };

  LlamaConfig config_;
  std::vector<ModuleState> modules_;
  RopeTable rope_;
};

// The Llama modules of a family that adds modules of its own (llava's tower and projector,
// mixtral's MoE): a LlamaModel over the graph's modules that `is_llama` accepts, with `config`
// as its config (llava: text_config), addressed by the graph's module indices.
class LlamaPart {
 public:
  LlamaPart(const ModelGraph& graph, const LlamaConfig& config, const TensorShards& shards,
            const std::function<bool(const Module&)>& is_llama);

  const LlamaConfig& config() const { return model_->config(); }
  bool holds(size_t i) const { return index_.at(i) >= 0; }
  // As LlamaModel's, indexed by the graph's modules (others ignored).
  void allocate(const std::vector<int64_t>& requests, int64_t capacity);
  StepPositions step_positions(int64_t first, int64_t tokens, int64_t attend_len, at::Device device) const {
    return model_->step_positions(first, tokens, attend_len, device);
  }
  at::Tensor forward(size_t i, const ModuleInputs& in, const StepPositions& step, bool adds_whole_terms);
  void keep_rows(const at::Tensor& rows) { model_->keep_rows(rows); }
  void all_rows() { model_->all_rows(); }

 private:
  std::unique_ptr<LlamaModel> model_;
  std::vector<int64_t> index_;  // per graph module: its index in model_, -1 for the others
};

}  // namespace shardplan
