// The Qwen2-MoE forward on one rank's shards (libtorch): Llama's embedding, attention (q/k/v
// biases), dense MLPs and lm_head (models/llama/llama_forward.h), and transformers'
// Qwen2MoeSparseMoeBlock:
//   x = post_attention_layernorm(h)
//   out = h + routed(x) + sigmoid(shared_expert_gate(x)) * shared_expert(x)
// where routed is the layer library's routed experts (models/layers/moe.h; the top-k weights
// renormalised only with norm_topk_prob) and shared_expert a gated MLP on every token.
//
// The shared expert has a mode of its own (the rule's `shared_expert`): replicate (whole on every
// rank) or tensor over its axes (gate/up rows, down columns: a partial sum). The module's output
// is partial over the routed part's partial axes and the shared expert's; each rank adds the
// residual, the routed sum and the shared sum only where the binding says so (ModuleInputs), so
// that the all_reduce sums each once.
//
// Worked example, tiny-qwen2-moe (8 experts, top-2, shared intermediate 96) with the MoE expert
// over [tp] (size 2) and its shared expert tensor over [tp]: rank 1 holds experts 4..7 and rows
// [48, 96) of the shared gate/up_proj (columns of down_proj); both parts are partial over tp,
// rank 0 adds the residual, and the plan's all_reduce over tp sums everything.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "models/forward/family_model.h"
#include "models/layers/moe.h"
#include "models/llama/llama_forward.h"
#include "models/qwen2_moe/qwen2_moe_graph.h"

namespace shardplan {

struct Qwen2MoeBlockWeights {
  MoeWeights routed;         // norm, router, routed experts
  LlamaMlpWeights shared;    // the shared expert (its slice under tensor)
  at::Tensor shared_gate;    // shared_expert_gate.weight [1, hidden], whole
};

// h + (adds_routed ? routed : 0) + (adds_shared ? shared : 0), the residual only with
// `adds_whole_terms`.
at::Tensor qwen2_moe_block_forward(const Qwen2MoeConfig& config, const Qwen2MoeBlockWeights& w, const at::Tensor& h,
                                   bool adds_whole_terms, bool adds_routed, bool adds_shared, ModuleComm* comm);

class Qwen2MoeModel : public FamilyModel {
 public:
  // As LlamaModel; routed experts the rank does not hold are absent from `shards`.
  Qwen2MoeModel(const ModelGraph& graph, const TensorShards& shards);

  void allocate(const std::vector<int64_t>& requests, int64_t capacity) override;
  StepPositions step_positions(int64_t first, int64_t tokens, int64_t attend_len, at::Device device) const override;
  at::Tensor forward(size_t i, const ModuleInputs& in, const StepPositions& step, bool adds_whole_terms,
                     ModuleComm* comm) override;
  // When every MoE block runs dense on `tokens` rows (moe_runs_dense).
  bool decode_capturable(int64_t tokens) const override;

  bool takes_ragged_prompts() const override { return true; }  // RoPE
  // The caches are the language model's (the other modules keep nothing across steps).
  bool keeps_rows() const override { return true; }
  void keep_rows(const at::Tensor& rows) override { llama_.keep_rows(rows); }
  void all_rows() override { llama_.all_rows(); }

 private:
  const Qwen2MoeConfig& config_;
  LlamaPart llama_;                           // embedding, attention, dense mlp, lm_head
  std::vector<Qwen2MoeBlockWeights> moe_;     // per graph module (empty for the others)
};

}  // namespace shardplan
