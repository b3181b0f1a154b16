// Routed experts of a MoE block (see moe.h).
#include "models/layers/moe.h"

#include <ATen/ATen.h>

#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "models/graph/moe_dense_rule.h"

namespace shardplan {

MoeRouting moe_route(const at::Tensor& x, const at::Tensor& gate, int64_t top_k, bool renormalize) {
  const at::Tensor logits = at::linear(x, gate);
  const at::Tensor probs = at::softmax(logits, 1, at::kFloat);
  auto [weights, experts] = at::topk(probs, top_k, -1);
  if (renormalize) weights = weights / weights.sum(-1, /*keepdim=*/true);
  return {experts, weights.to(x.scalar_type())};
}

at::Tensor moe_experts_forward(const MoeWeights& w, const at::Tensor& rows, const at::Tensor& experts) {
  at::Tensor out = at::zeros({rows.size(0), rows.size(1)}, rows.options());
  if (rows.size(0) == 0) return out;
  const at::Tensor ids = experts.to(at::kCPU);
  const int64_t n_experts = static_cast<int64_t>(w.w1.size());
  // NOTE: one pass per expert over its rows, in expert order, as transformers' loop.
  const at::Tensor counts = at::bincount(ids, {}, n_experts);
  const int64_t* count = counts.data_ptr<int64_t>();
  for (int64_t e = 0; e < n_experts; ++e) {
    if (count[e] == 0) continue;
    if (!w.w1[e].defined()) throw std::logic_error("expert " + std::to_string(e) + " is not held by this rank");
    const at::Tensor idx = at::nonzero(ids == e).squeeze(1).to(rows.device());
    const at::Tensor r = rows.index_select(0, idx);
    const at::Tensor y = at::linear(at::silu(at::linear(r, w.w1[e])) * at::linear(r, w.w3[e]), w.w2[e]);
    out.index_copy_(0, idx, y);
  }
  return out;
}

bool moe_runs_dense(const MoeWeights& w, int64_t tokens, int64_t top_k) {
  int64_t held = 0;
  for (const at::Tensor& t : w.w1) held += t.defined() ? 1 : 0;
  return moe_dense_rule(tokens, top_k, held);
}

namespace {

// Every held expert on every token; out = sum over held experts e of weight(token, e) * expert_e(x),
// weight(token, e) the routing weight when e is among the token's choices, else 0.
at::Tensor moe_dense_forward(const MoeWeights& w, const at::Tensor& x, const MoeRouting& route) {
  at::Tensor out = at::zeros_like(x);
  for (size_t e = 0; e < w.w1.size(); ++e) {
    if (!w.w1[e].defined()) continue;
    // [tokens, 1]: the weight of expert e for each token (a token chooses an expert at most once).
    const at::Tensor weight =
        (route.weights * route.experts.eq(static_cast<int64_t>(e)).to(route.weights.scalar_type())).sum(-1, true);
    const at::Tensor y = at::linear(at::silu(at::linear(x, w.w1[e])) * at::linear(x, w.w3[e]), w.w2[e]);
    out.addcmul_(y, weight);
  }
  return out;
}

}  // namespace

at::Tensor moe_routed_forward(const MoeWeights& w, const at::Tensor& x, int64_t top_k, bool renormalize,
                              ModuleComm* comm) {
  const int64_t hidden = x.size(-1);
  const int64_t tokens = x.size(0);
  const MoeRouting route = moe_route(x, w.gate, top_k, renormalize);
  if (comm == nullptr && moe_runs_dense(w, tokens, top_k)) return moe_dense_forward(w, x, route);
  // Every (token, choice) pair, token-major: pair p is token p / k, choice p % k.
  const at::Tensor pair_token = at::arange(tokens, route.experts.options()).repeat_interleave(top_k);
  const at::Tensor pair_expert = route.experts.reshape({-1});
  const at::Tensor pair_weight = route.weights.reshape({-1});

  at::Tensor keep;           // the pairs this rank computes or sends (indices into the pairs)
  at::Tensor results;        // their unweighted expert outputs, in the order of `keep`
  if (comm == nullptr) {
    // Replicated tokens: the experts held here, on every token routed to them.
    std::vector<int64_t> held(w.w1.size());
    for (size_t e = 0; e < held.size(); ++e) held[e] = w.w1[e].defined() ? 1 : 0;
    const at::Tensor held_t = at::tensor(held, at::TensorOptions().dtype(at::kLong)).to(pair_expert.device());
    keep = at::nonzero(held_t.index_select(0, pair_expert)).squeeze(1);
    results = moe_experts_forward(w, x.index_select(0, pair_token.index_select(0, keep)),
                                      pair_expert.index_select(0, keep));
  } else {
    // Batch-split tokens: each kept pair goes to the member owning its expert, ordered by
    // (member, expert); the counts per (member, expert) travel first, so the owner knows which
    // expert each received row is for.
    const int64_t g = comm->group_size();
    const int64_t n_experts = static_cast<int64_t>(w.w1.size());
    const at::Tensor member_of = at::tensor(comm->expert_member(), at::TensorOptions().dtype(at::kLong))
                                     .to(pair_expert.device());
    const at::Tensor pair_member = member_of.index_select(0, pair_expert);
    const at::Tensor sent = at::nonzero(pair_member >= 0).squeeze(1);
    // Stable sort by (member, expert): member * experts + expert, ties in pair order.
    const at::Tensor key = (pair_member * n_experts + pair_expert).index_select(0, sent);
    const at::Tensor order = std::get<1>(at::sort(key.to(at::kCPU), /*stable=*/true, 0, false)).to(sent.device());
    keep = sent.index_select(0, order);
    const at::Tensor keep_key = key.index_select(0, order).to(at::kCPU);
    const at::Tensor counts = at::bincount(keep_key, {}, g * n_experts).reshape({g, n_experts});
    const at::Tensor received_counts = comm->exchange_counts(counts.to(x.device())).to(at::kCPU);  // [g, experts]
    std::vector<int64_t> send(g), recv(g);
    for (int64_t i = 0; i < g; ++i) {
      send[i] = counts[i].sum().item<int64_t>();
      recv[i] = received_counts[i].sum().item<int64_t>();
    }
    const at::Tensor rows = x.index_select(0, pair_token.index_select(0, keep));
    const at::Tensor arrived = comm->all_to_all("dispatch", rows, send, recv);
    // The expert of every arrived row: source by source, expert by expert.
    const at::Tensor expert_ids =
        at::repeat_interleave(at::arange(n_experts, at::TensorOptions().dtype(at::kLong)).repeat({g}),
                              received_counts.reshape({-1}));
    const at::Tensor computed = moe_experts_forward(w, arrived, expert_ids);
    results = comm->all_to_all("combine", computed, recv, send);
  }
  at::Tensor out = at::zeros({tokens, hidden}, x.options());
  const at::Tensor weighted = results * pair_weight.index_select(0, keep).unsqueeze(1);
  out.index_add_(0, pair_token.index_select(0, keep), weighted);
  return out;
}


MoeWeights moe_weights(const ModuleWeights& weights) {
  const Module& m = weights.module();
  MoeWeights w;
  w.norm = weights.weight(ParamRole::kNorm);
  w.gate = weights.weight(ParamRole::kRouter);
  const int64_t experts = m.dims.experts;
  w.w1.resize(experts);
  w.w2.resize(experts);
  w.w3.resize(experts);
  for (int e = 0; e < experts; ++e) {
    // NOTE: under `expert` a rank holds none of the other ranks' experts (find gives nullptr).
    const TensorShard* gate = weights.find({ParamRole::kGate, false, e});
    const TensorShard* down = weights.find({ParamRole::kDown, false, e});
    const TensorShard* up = weights.find({ParamRole::kUp, false, e});
    if (!gate != !down || !gate != !up) {
      throw std::invalid_argument("module " + m.path + ": expert " + std::to_string(e) +
                                  " is held in part (gate, up and down go together)");
    }
    if (!gate) continue;
    w.w1[e] = gate->tensor;
    w.w2[e] = down->tensor;
    w.w3[e] = up->tensor;
  }
  return w;
}

}  // namespace shardplan
