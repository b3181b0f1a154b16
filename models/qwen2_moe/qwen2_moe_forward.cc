// The Qwen2-MoE forward on a rank's shards (see qwen2_moe_forward.h).
#include "models/qwen2_moe/qwen2_moe_forward.h"

#include <ATen/ATen.h>

#include "models/layers/norm.h"
#include "models/layers/weights.h"

namespace shardplan {

at::Tensor qwen2_moe_block_forward(const Qwen2MoeConfig& config, const Qwen2MoeBlockWeights& w, const at::Tensor& h,
                                   bool adds_whole_terms, bool adds_routed, bool adds_shared, ModuleComm* comm) {
  const at::Tensor x = rms_norm(h, w.routed.norm, config.rms_norm_eps).reshape({-1, h.size(-1)});
  // NOTE: the routed experts run even where their sum is not added: the dispatch and combine
  // are collectives every member of the group takes part in.
  at::Tensor routed = moe_routed_forward(w.routed, x, config.experts_per_token, config.norm_topk_prob, comm);
  at::Tensor out = adds_routed ? routed : at::zeros_like(routed);
  if (adds_shared) {
    const at::Tensor shared = llama_gated_mlp(w.shared, x, /*adds_bias=*/false);
    out = out + at::sigmoid(at::linear(x, w.shared_gate)) * shared;
  }
  out = out.view(h.sizes());
  if (adds_whole_terms) out = out + h;
  return out;
}

Qwen2MoeModel::Qwen2MoeModel(const ModelGraph& graph, const TensorShards& shards)
    : config_(graph.typed_config<Qwen2MoeConfig>()),
      llama_(graph, config_, shards, [](const Module& m) { return m.kind != ModuleKind::kMoe; }) {
  for (const Module& m : graph.modules) {
    Qwen2MoeBlockWeights block;
    if (m.kind == ModuleKind::kMoe) {
      const ModuleWeights w(m, shards);
      block.routed = moe_weights(w);
      block.shared = llama_mlp_weights(w, /*shared_expert=*/true);
      block.shared_gate = w.at({ParamRole::kSharedExpertGate, false, -1, /*shared_expert=*/true}).tensor;
    }
    moe_.push_back(std::move(block));
  }
}

bool Qwen2MoeModel::decode_capturable(int64_t tokens) const {
  for (const Qwen2MoeBlockWeights& w : moe_) {
    if (!w.routed.w1.empty() && !moe_runs_dense(w.routed, tokens, config_.experts_per_token)) return false;
  }
  return true;
}

void Qwen2MoeModel::allocate(const std::vector<int64_t>& requests, int64_t capacity) {
  llama_.allocate(requests, capacity);
}

StepPositions Qwen2MoeModel::step_positions(int64_t first, int64_t tokens, int64_t attend_len,
                                            at::Device device) const {
  return llama_.step_positions(first, tokens, attend_len, device);
}

at::Tensor Qwen2MoeModel::forward(size_t i, const ModuleInputs& in, const StepPositions& step, bool adds_whole_terms,
                                  ModuleComm* comm) {
  if (llama_.holds(i)) return llama_.forward(i, in, step, adds_whole_terms);
  return qwen2_moe_block_forward(config_, moe_.at(i), in.main, adds_whole_terms, in.adds_routed, in.adds_shared, comm);
}

}  // namespace shardplan
