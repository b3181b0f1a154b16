// The Mixtral forward on one rank's shards (libtorch): Llama's embedding, attention and lm_head
// (models/llama/llama_forward.h) and the sparse MoE block of transformers' MixtralSparseMoeBlock
// (the layer library's routed experts, models/layers/moe.h, with the top-k weights renormalised).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "models/forward/family_model.h"
#include "models/layers/moe.h"
#include "models/llama/llama_forward.h"

namespace shardplan {

using MixtralMoeWeights = MoeWeights;

// Mixtral's routing: moe_route with the top-k weights renormalised to sum 1.
MoeRouting mixtral_route(const at::Tensor& x, const at::Tensor& gate, int64_t top_k);

// h + moe(post_attention_layernorm(h)); `adds_whole_terms`: add the residual h. `comm` as in
// moe_routed_forward.
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
  // When every MoE block runs dense on `tokens` rows (moe_runs_dense).
  bool decode_capturable(int64_t tokens) const override;

  bool takes_ragged_prompts() const override { return true; }  // RoPE
  // The caches are the language model's (the other modules keep nothing across steps).
  bool keeps_rows() const override { return true; }
  void keep_rows(const at::Tensor& rows) override { llama_.keep_rows(rows); }
  void all_rows() override { llama_.all_rows(); }

 private:
  LlamaPart llama_;                     // embedding, attention, lm_head
  std::vector<MixtralMoeWeights> moe_;  // per graph module (empty for the others)
  int64_t top_k_ = 2;
};

}  // namespace shardplan
