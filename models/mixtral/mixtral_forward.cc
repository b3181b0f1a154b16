// The Mixtral forward on a rank's shards (see mixtral_forward.h).
#include "models/mixtral/mixtral_forward.h"

#include <ATen/ATen.h>

#include <stdexcept>
#include <string>
#include <utility>

#include "models/layers/norm.h"
#include "models/layers/weights.h"
#include "models/mixtral/mixtral_graph.h"

namespace shardplan {

MoeRouting mixtral_route(const at::Tensor& x, const at::Tensor& gate, int64_t top_k) {
  return moe_route(x, gate, top_k, /*renormalize=*/true);
}

at::Tensor mixtral_moe_forward(const LlamaConfig& config, int64_t top_k, const MixtralMoeWeights& w,
                               const at::Tensor& h, bool adds_whole_terms, ModuleComm* comm) {
  const at::Tensor x = rms_norm(h, w.norm, config.rms_norm_eps).reshape({-1, h.size(-1)});
  at::Tensor out = moe_routed_forward(w, x, top_k, /*renormalize=*/true, comm).view(h.sizes());
  if (adds_whole_terms) out = out + h;
  return out;
}

MixtralModel::MixtralModel(const ModelGraph& graph, const TensorShards& shards)
    : llama_(graph, graph.typed_config<MixtralConfig>(), shards,
             [](const Module& m) { return m.kind != ModuleKind::kMoe; }),
      top_k_(graph.typed_config<MixtralConfig>().experts_per_token) {
  for (const Module& m : graph.modules) {
    moe_.push_back(m.kind == ModuleKind::kMoe ? moe_weights(ModuleWeights(m, shards)) : MixtralMoeWeights{});
  }
}

bool MixtralModel::decode_capturable(int64_t tokens) const {
  for (const MixtralMoeWeights& w : moe_) {
    if (!w.w1.empty() && !moe_runs_dense(w, tokens, top_k_)) return false;
  }
  return true;
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
