// Qwen2-MoE (model_type qwen2_moe; Qwen1.5-MoE-A2.7B): the Qwen2 decoder (q/k/v biases) with a
// sparse MoE block in place of the MLP of every `decoder_sparse_step`-th layer not listed in
// `mlp_only_layers`. The block has routed experts (top-k of a softmax, renormalised only with
// norm_topk_prob) and one shared expert, a gated MLP on every token scaled by
// sigmoid(shared_expert_gate(x)).
//
// Module tree of Qwen1.5-MoE-A2.7B, in execution order:
//   model.embed_tokens          embedding
//   model.layers.N.self_attn    attention  (as Qwen2: q/k/v biases)
//   model.layers.N.mlp          moe        post_attention_layernorm, gate.weight [60, 2048] (router),
//                                          experts.E.{gate,up}_proj.weight [1408, 2048],
//                                          experts.E.down_proj.weight [2048, 1408],
//                                          shared_expert.{gate,up,down}_proj (intermediate 5632),
//                                          shared_expert_gate.weight [1, 2048]
//   lm_head                     lm_head
// The shared expert's tensors are marked Param::shared_expert: a moe rule's `shared_expert` key
// gives them a mode of their own (docs/spec-format.md §2).
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/graph/family.h"
#include "models/graph/model_graph.h"
#include "models/llama/llama_config.h"

namespace shardplan {

struct Qwen2MoeConfig : LlamaConfig {
  int64_t experts = 0;                     // num_experts
  int64_t experts_per_token = 0;           // num_experts_per_tok
  int64_t moe_intermediate = 0;            // moe_intermediate_size: each routed expert's
  int64_t shared_expert_intermediate = 0;  // shared_expert_intermediate_size
  bool norm_topk_prob = false;             // renormalise the top-k weights to sum 1
  int64_t decoder_sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;    // layers with a dense MLP (intermediate_size)
  bool is_sparse(int64_t layer) const;
};

// Checks, besides read_llama_config's: num_experts >= 1, 1 <= num_experts_per_tok <= num_experts,
// mlp_only_layers a list of layer indices.
ModelGraph build_qwen2_moe_graph(const nlohmann::json& config);

const Family& qwen2_moe_family();

}  // namespace shardplan
