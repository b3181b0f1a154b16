// The routed experts of a MoE block (Mixtral's, Qwen2-MoE's) on one rank's shards:
//   router logits = gate(x); weights = softmax(logits) in float32; the top-k experts; their
//   weights renormalised to sum 1 where the family does (Mixtral; Qwen2-MoE with norm_topk_prob)
//   and cast back to x's dtype; out = sum over the chosen experts of weight * down(silu(gate x) * up x).
// Modes (spec-format.md §2): `tensor` holds every expert's intermediate slice (gate/up rows, down
// columns) and gives a partial sum; `expert` holds whole experts. Under `expert` with tokens
// replicated over the expert axes, each rank runs its own experts on all tokens routed to them
// (partial output; the plan's all_reduce follows). With batch-split tokens the block asks the
// runtime (ModuleComm) to run the plan's all_to_all pair: dispatch each (token, choice) row to the
// member that owns the expert, the owners compute, combine returns the results, and the sender
// applies the routing weights and sums.
//
// Worked example, tiny-mixtral (8 experts, top-2) under expert over [ep] (size 4) with
// attention data over [ep]: rank 1 holds experts 2 and 3; a token of rank 0 routed to experts
// 3 and 6 is sent to member 1 (for 3) and member 3 (for 6), each row once per choice.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "models/forward/family_model.h"
#include "models/layers/weights.h"

namespace shardplan {

// The router's choice for each token: `experts` [tokens, k] int64 (descending weight, as
// torch.topk), `weights` [tokens, k] (renormalised to sum 1 when asked), in x's dtype.
struct MoeRouting {
  at::Tensor experts;
  at::Tensor weights;
};
// x [tokens, hidden], gate [experts, hidden].
MoeRouting moe_route(const at::Tensor& x, const at::Tensor& gate, int64_t top_k, bool renormalize);

struct MoeWeights {
  at::Tensor norm;                       // post_attention_layernorm
  at::Tensor gate;                       // router [experts, hidden], whole on every rank
  std::vector<at::Tensor> w1, w2, w3;    // per expert gate, down, up; undefined where the rank holds none of it
};

// The module's norm, router and routed experts, bound by role (kNorm, kRouter; kGate, kDown, kUp
// of each expert).
MoeWeights moe_weights(const ModuleWeights& weights);

// rows [n, hidden] and their experts [n] (int64, CPU or device): each row through its expert,
// unweighted: down(silu(gate r) * up r) on the rank's slice of the expert (a partial sum under
// `tensor`). Every expert named must be held.
at::Tensor moe_experts_forward(const MoeWeights& w, const at::Tensor& rows, const at::Tensor& experts);

// Whether the routed experts of `w` run dense on `tokens` tokens: every held expert on every
// token, its output weighted by the token's routing weight for it (0 when not chosen). Chosen by
// moe_dense_rule (models/graph/moe_dense_rule.h: most held experts hit, at most 128 rows; the cost
// model shares it); needs no count on the host, so a decode step with it can be a CUDA graph. Sparse
// otherwise (rows gathered per expert; the counts go through the host).
bool moe_runs_dense(const MoeWeights& w, int64_t tokens, int64_t top_k);

// The routed experts' output [tokens, hidden] for x [tokens, hidden] (already normed; no
// residual). `comm` null: the rank computes the experts it holds on every token routed to them
// (dense or sparse, moe_runs_dense); else the exchange above (sparse).
at::Tensor moe_routed_forward(const MoeWeights& w, const at::Tensor& x, int64_t top_k, bool renormalize,
                              ModuleComm* comm);

}  // namespace shardplan
