// The Mixtral forward on a rank's shards (see mixtral_forward.h).
#include "models/mixtral/mixtral_forward.h"

#include <ATen/ATen.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace shardplan {
namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "model.layers.0.block_sparse_moe.experts.5.w1.weight" -> 5 (the text after "experts.").
int64_t expert_of(const std::string& name) {
  const std::string key = ".experts.";
  const size_t at = name.find(key);
  return std::stoll(name.substr(at + key.size()));
}

MixtralMoeWeights moe_weights(const Module& m, const TensorShards& shards) {
  MixtralMoeWeights w;
  const int64_t experts = m.dims.experts;
  w.w1.resize(experts);
  w.w2.resize(experts);
  w.w3.resize(experts);
  for (const Param& p : m.params) {
    auto it = shards.find(p.name);
    const bool expert = p.name.find(".experts.") != std::string::npos;
    if (it == shards.end()) {
      // NOTE: under `expert` a rank holds none of the other ranks' experts; anything else missing
      // is a bug in loading.
      if (expert) continue;
      throw std::invalid_argument("tensor '" + p.name + "' was not loaded");
    }
    const at::Tensor& t = it->second.tensor;
    if (ends_with(p.name, ".post_attention_layernorm.weight")) {
      w.norm = t;
    } else if (ends_with(p.name, ".gate.weight")) {
      w.gate = t;
    } else if (expert && ends_with(p.name, ".w1.weight")) {
      w.w1.at(expert_of(p.name)) = t;
    } else if (expert && ends_with(p.name, ".w2.weight")) {
      w.w2.at(expert_of(p.name)) = t;
    } else if (expert && ends_with(p.name, ".w3.weight")) {
      w.w3.at(expert_of(p.name)) = t;
    } else {
      throw std::invalid_argument("module " + m.path + " has a tensor the mixtral forward does not know: " + p.name);
    }
  }
  for (int64_t e = 0; e < experts; ++e) {
    if (w.w1[e].defined() != w.w2[e].defined() || w.w1[e].defined() != w.w3[e].defined()) {
      throw std::invalid_argument("module " + m.path + ": expert " + std::to_string(e) +
                                  " is held in part (w1, w2 and w3 go together)");
    }
  }
  return w;
}

}  // namespace

MoeRouting mixtral_route(const at::Tensor& x, const at::Tensor& gate, int64_t top_k) {
  const at::Tensor logits = at::linear(x, gate);
  const at::Tensor probs = at::softmax(logits, 1, at::kFloat);
  auto [weights, experts] = at::topk(probs, top_k, -1);
  weights = weights / weights.sum(-1, /*keepdim=*/true);
  return {experts, weights.to(x.scalar_type())};
}

at::Tensor mixtral_experts_forward(const MixtralMoeWeights& w, const at::Tensor& rows, const at::Tensor& experts) {
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

at::Tensor mixtral_moe_forward(const LlamaConfig& config, int64_t top_k, const MixtralMoeWeights& w,
                               const at::Tensor& h, bool adds_whole_terms, ModuleComm* comm) {
  const int64_t hidden = h.size(-1);
  const at::Tensor x = llama_rms_norm(h, w.norm, config.rms_norm_eps).reshape({-1, hidden});
  const int64_t tokens = x.size(0);
  const MoeRouting route = mixtral_route(x, w.gate, top_k);
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
    results = mixtral_experts_forward(w, x.index_select(0, pair_token.index_select(0, keep)),
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
    const at::Tensor computed = mixtral_experts_forward(w, arrived, expert_ids);
    results = comm->all_to_all("combine", computed, recv, send);
  }
  at::Tensor out = at::zeros({tokens, hidden}, x.options());
  const at::Tensor weighted = results * pair_weight.index_select(0, keep).unsqueeze(1);
  out.index_add_(0, pair_token.index_select(0, keep), weighted);
  out = out.view(h.sizes());
  if (adds_whole_terms) out = out + h;
  return out;
}

MixtralModel::MixtralModel(const ModelGraph& graph, const TensorShards& shards)
    : llama_(graph, graph.config, shards, [](const Module& m) { return m.kind != ModuleKind::kMoe; }),
      top_k_(graph.config.value("num_experts_per_tok", int64_t{2})) {
  for (const Module& m : graph.modules) {
    moe_.push_back(m.kind == ModuleKind::kMoe ? moe_weights(m, shards) : MixtralMoeWeights{});
  }
}

void MixtralModel::allocate(const std::vector<int64_t>& requests, int64_t capacity) { llama_.allocate(requests, capacity); }

StepPositions MixtralModel::step_positions(int64_t first, int64_t tokens, int64_t attend_len,
                                           at::Device device) const {
  return llama_.step_positions(first, tokens, attend_len, device);
}

at::Tensor MixtralModel::forward(size_t i, const ModuleInputs& in, const StepPositions& step, bool adds_whole_terms,
                                 ModuleComm* comm) {
  if (llama_.holds(i)) return llama_.forward(i, in, step, adds_whole_terms);
  return mixtral_moe_forward(llama_.config(), top_k_, moe_.at(i), in.main, adds_whole_terms, comm);
}

}  // namespace shardplan
