// Llama-family decoders (config model_type llama, mistral, qwen2; mixtral and llava reuse the
// pieces): sizes from config.json with each model_type's transformers defaults, and the module
// tree in Hub tensor names.
//
// Module tree of Llama-3-8B (prefix ""), in execution order:
//   model.embed_tokens            embedding  model.embed_tokens.weight [128256, 4096]
//   model.layers.N.self_attn      attention  input_layernorm, q/k/v/o_proj        (N = 0..31)
//   model.layers.N.mlp            mlp        post_attention_layernorm, gate/up/down_proj
//   lm_head                       lm_head    model.norm.weight, lm_head.weight [128256, 4096]
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "models/graph/config_reader.h"
#include "models/graph/family.h"
#include "models/llama/llama_config.h"
#include "models/graph/model_graph.h"

namespace shardplan {

// `prefix` is the Hub-name prefix of the whole decoder: "" in a Llama checkpoint,
// "language_model." inside llava.
Module llama_embedding_module(const std::string& prefix, const LlamaConfig& dims);
Module llama_attention_module(const std::string& prefix, int layer, const LlamaConfig& dims);
Module llama_mlp_module(const std::string& prefix, int layer, const LlamaConfig& dims);
// gate_proj / up_proj (column-parallel) and down_proj (row-parallel) under "<prefix>.", roles
// kGate, kUp, kDown (a Llama MLP, an expert, a shared expert).
void add_gated_mlp(Module& module, const std::string& prefix, int64_t hidden, int64_t intermediate,
                   bool has_bias);
// Owns the final norm "<prefix>model.norm.weight" and, unless tied, "<prefix>lm_head.weight".
Module llama_lm_head_module(const std::string& prefix, const LlamaConfig& dims);

// Appends the decoder every Llama-style family has (embedding; per layer attention and
// `mlp(layer)`; lm_head) under the Hub prefix `prefix`, and sets the graph's tie, widths and
// position limit from `config`. `mlp` gives a layer's MLP or MoE module.
void add_llama_decoder(ModelGraph& graph, const std::string& prefix, const LlamaConfig& config,
                       const std::function<Module(int layer)>& mlp);

// The whole graph of a llama / mistral / qwen2 config (its typed config: LlamaConfig).
ModelGraph build_llama_graph(const nlohmann::json& config);

// The family table's entry (models/family/family_table.cc).
const Family& llama_family();

}  // namespace shardplan
