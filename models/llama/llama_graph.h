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
#include <string>

#include <nlohmann/json.hpp>

#include "models/graph/config_reader.h"
#include "models/graph/model_graph.h"

namespace shardplan {

struct LlamaDims {
  int64_t vocab = 0;
  int64_t hidden = 0;
  int64_t intermediate = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_positions = 0;
  bool qkv_bias = false;   // q/k/v_proj.bias (qwen2 always; llama with attention_bias)
  bool o_bias = false;     // o_proj.bias (llama with attention_bias)
  bool mlp_bias = false;   // gate/up/down_proj.bias (llama with mlp_bias)
  bool tie_word_embeddings = false;
};

// Reads the decoder sizes of a `model_type` config (llama, mistral, qwen2 or mixtral: each has its
// own transformers defaults, e.g. vocab 151936 for qwen2, 8 KV heads for mistral) and writes the
// defaults it applied into the reader's object. Checks:
//   - every size is an integer >= 1;
//   - hidden_size is divisible by num_attention_heads when head_dim is not given;
//   - num_attention_heads is divisible by num_key_value_heads.
LlamaDims read_llama_dims(ConfigReader& reader, const std::string& model_type);

// `prefix` is the Hub-name prefix of the whole decoder: "" in a Llama checkpoint,
// "language_model." inside llava.
Module llama_embedding_module(const std::string& prefix, const LlamaDims& dims);
Module llama_attention_module(const std::string& prefix, int layer, const LlamaDims& dims);
Module llama_mlp_module(const std::string& prefix, int layer, const LlamaDims& dims);
// Owns the final norm "<prefix>model.norm.weight" and, unless tied, "<prefix>lm_head.weight".
Module llama_lm_head_module(const std::string& prefix, const LlamaDims& dims);

// The whole graph of a llama / mistral / qwen2 config.
ModelGraph build_llama_graph(const nlohmann::json& config);

}  // namespace shardplan
