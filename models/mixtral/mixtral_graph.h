// Mixtral: the Llama decoder with a sparse mixture-of-experts block in place of each MLP.
//
// Module tree of Mixtral-8x7B, in execution order:
//   model.embed_tokens                 embedding
//   model.layers.N.self_attn           attention  (as Llama; no biases)
//   model.layers.N.block_sparse_moe    moe        post_attention_layernorm, gate.weight [8, 4096]
//                                                 (router, whole), experts.E.w1/w3.weight
//                                                 [14336, 4096], experts.E.w2.weight [4096, 14336]
//   lm_head                            lm_head
// NOTE: the Hub checkpoints name experts "block_sparse_moe.experts.E.w1.weight" even though
// transformers 5 fuses them internally (mlp.experts.gate_up_proj); these are the Hub names.
#pragma once

#include <nlohmann/json.hpp>

#include "models/graph/family.h"
#include "models/graph/model_graph.h"
#include "models/llama/llama_graph.h"

namespace shardplan {

// Mixtral's typed config: the Llama decoder's and the MoE's sizes.
struct MixtralConfig : LlamaConfig {
  int64_t experts = 0;            // num_local_experts
  int64_t experts_per_token = 0;  // num_experts_per_tok
};

// One layer's block_sparse_moe module.
Module mixtral_moe_module(int layer, const MixtralConfig& config);

// Checks, besides read_llama_config's: num_local_experts >= 1 and
// 1 <= num_experts_per_tok <= num_local_experts.
ModelGraph build_mixtral_graph(const nlohmann::json& config);

const Family& mixtral_family();

}  // namespace shardplan
