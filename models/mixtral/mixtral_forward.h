// The Mixtral forward on one rank's shards (libtorch): Llama's embedding, attention and lm_head
// (models/llama/llama_forward.h) and the sparse MoE block of transformers' MixtralSparseMoeBlock:
//   router logits = gate(x); weights = softmax(logits) in float32; the top-k experts; their
//   weights renormalised to sum 1 and cast back to x's dtype; out = sum over the chosen experts
//   of weight * w2(silu(w1 x) * w3 x).
// Modes of the MoE (spec-format.md §2): `tensor` holds every expert's intermediate slice (w1/w3
// rows, w2 columns) and returns a partial sum; `expert` holds whole experts. Under `expert` with
// tokens replicated over the expert axes, each rank runs its own experts on all tokens routed to
// them (partial output; the plan's all_reduce follows). With batch-split tokens the module asks
// the runtime (ModuleComm) to run the plan's all_to_all pair: dispatch each (token, choice) row to
// the member that owns the expert, the owners compute, combine returns the results, and the
// sender applies the routing weights and sums.
//
// Worked example, tiny-mixtral (8 experts, top-2) under expert over [ep] (size 4) with
// attention data over [ep]: rank 1 holds experts 2 and 3; a token of rank 0 routed to experts
// 3 and 6 is sent to member 1 (for 3) and member 3 (for 6), each row once per choice.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "models/forward/family_model.h"
#include "models/llama/llama_forward.h"

namespace shardplan {

// The router's choice for each token: `experts` [tokens, k] int64 (descending weight, as
// torch.topk), `weights` [tokens, k] renormalised to sum 1, in `dtype`.
struct MoeRouting {
  at::Tensor experts;
  at::Tensor weights;
};
// x [tokens, hidden], gate [experts, hidden].
MoeRouting mixtral_route(const at::Tensor& x, const at::Tensor& gate, int64_t top_k);

struct MixtralMoeWeights {
  at::Tensor norm;                       // post_attention_layernorm
  at::Tensor gate;                       // router [experts, hidden], whole on every rank
  std::vector<at::Tensor> w1, w2, w3;    // per expert; undefined where the rank holds none of it
};

// rows [n, hidden] and their experts [n] (int64, CPU or device): each row through its expert,
// unweighted: w2(silu(w1 r) * w3 r) on the rank's slice of the expert (a partial sum under
// `tensor`). Every expert named must be held.
at::Tensor mixtral_experts_forward(const MixtralMoeWeights& w, const at::Tensor& rows, const at::Tensor& experts);

// h + moe(post_attention_layernorm(h)); `adds_whole_terms`: add the residual h. `comm` null: the
// rank computes the experts it holds on every token routed to them; else the exchange above.
at::Tensor mixtral_moe_forward(const LlamaConfig& config, int64_t top_k, const MixtralMoeWeights& w,
                               const at::Tensor& h, bool adds_whole_terms, ModuleComm* comm);

class MixtralModel : public FamilyModel {
 public:
  // As LlamaModel; expert tensors the rank does not hold are absent from `shards`.
  MixtralModel(const ModelGraph& graph, const TensorShards& shards);

  void allocate(const std::vector<int64_t>& requests, int64_t capacity) override;
  StepPositions step_positions(int64_t first, int64_t tokens, int64_t attend_len, at::Device device) const override;
  at::Tensor forward(size_t i, const ModuleInputs& in, const StepPositions& step, bool adds_whole_terms,
                     ModuleComm* comm) override;

 private:
  LlamaPart llama_;                     // embedding, attention, lm_head
  std::vector<MixtralMoeWeights> moe_;  // per graph module (empty for the others)
  int64_t top_k_ = 2;
};

}  // namespace shardplan
