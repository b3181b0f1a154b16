// Llama, Mistral and Qwen2 decoders: transformers' per-model_type defaults and the module tree.
#include "models/llama/llama_graph.h"

#include <optional>

#include "models/graph/module_builder.h"

namespace shardplan {
namespace {

// Defaults of transformers' LlamaConfig, MistralConfig, Qwen2Config and MixtralConfig.
struct LlamaDefaults {
  int64_t vocab;
  int64_t hidden;
  int64_t intermediate;
  int64_t layers;
  int64_t heads;
  std::optional<int64_t> kv_heads;  // nullopt: num_attention_heads
  int64_t max_positions;
  double rms_norm_eps;
  double rope_theta;
};

LlamaDefaults defaults_for(const std::string& model_type) {
  // NOTE: checked against transformers' configuration_{llama,mistral,qwen2,mixtral}.py;
  // MistralConfig and MixtralConfig default to 8 KV heads and max_position_embeddings 4096 * 32.
  if (model_type == "mistral") return {32000, 4096, 14336, 32, 32, 8, 4096 * 32, 1e-6, 10000.0};
  if (model_type == "qwen2") return {151936, 4096, 22016, 32, 32, 32, 32768, 1e-6, 10000.0};
  if (model_type == "mixtral") return {32000, 4096, 14336, 32, 32, 8, 4096 * 32, 1e-5, 1e6};
  return {32000, 4096, 11008, 32, 32, std::nullopt, 2048, 1e-6, 10000.0};  // llama
}

std::string layer_prefix(const std::string& prefix, int layer) {
  return prefix + "model.layers." + std::to_string(layer) + ".";
}

}  // namespace

LlamaDims read_llama_dims(ConfigReader& reader, const std::string& model_type) {
  const LlamaDefaults defaults = defaults_for(model_type);
  LlamaDims dims;
  dims.vocab = reader.size("vocab_size", defaults.vocab);
  dims.hidden = reader.size("hidden_size", defaults.hidden);
  dims.intermediate = reader.size("intermediate_size", defaults.intermediate);
  dims.layers = reader.size("num_hidden_layers", defaults.layers);
  dims.heads = reader.size("num_attention_heads", defaults.heads);
  // NOTE: an explicit null means "as many as attention heads" in every one of these configs;
  // only an absent field takes the class default (8 for mistral / mixtral).
  if (reader.is_null("num_key_value_heads") || !defaults.kv_heads) {
    dims.kv_heads = reader.size("num_key_value_heads", dims.heads);
  } else {
    dims.kv_heads = reader.size("num_key_value_heads", *defaults.kv_heads);
  }
  std::optional<int64_t> head_dim = reader.optional_size("head_dim");
  if (head_dim) {
    dims.head_dim = *head_dim;
  } else {
    require_divisible(dims.hidden, reader.field("hidden_size"), dims.heads,
                      reader.field("num_attention_heads"));
    dims.head_dim = dims.hidden / dims.heads;
    reader.set_derived("head_dim", dims.head_dim);
  }
  require_divisible(dims.heads, reader.field("num_attention_heads"), dims.kv_heads,
                    reader.field("num_key_value_heads"));
  dims.max_positions = reader.size("max_position_embeddings", defaults.max_positions);
  dims.tie_word_embeddings = reader.flag("tie_word_embeddings", false);

  // NOTE: only LlamaConfig has attention_bias / mlp_bias; transformers' Mistral and Mixtral
  // attention has no bias whatever the config says, Qwen2's always has q/k/v biases.
  if (model_type == "llama") {
    const bool attention_bias = reader.flag("attention_bias", false);
    dims.qkv_bias = attention_bias;
    dims.o_bias = attention_bias;
    dims.mlp_bias = reader.flag("mlp_bias", false);
  } else if (model_type == "qwen2") {
    dims.qkv_bias = true;
  }

  // Read by the forward code only; written so ModelGraph::config has them.
  reader.text("hidden_act", "silu");
  reader.number("rms_norm_eps", defaults.rms_norm_eps);
  const bool theta_in_rope_parameters =
      reader.has("rope_parameters") && reader.child("rope_parameters").contains("rope_theta");
  if (!theta_in_rope_parameters) reader.number("rope_theta", defaults.rope_theta);
  return dims;
}

Module llama_embedding_module(const std::string& prefix, const LlamaDims& dims) {
  Module module = make_module(prefix + "model.embed_tokens", ModuleKind::kEmbedding, Stream::kText);
  module.dims.hidden = dims.hidden;
  module.dims.vocab = dims.vocab;
  add_param(module, module.path + ".weight", {dims.vocab, dims.hidden}, split_units(0, dims.vocab));
  return module;
}

Module llama_attention_module(const std::string& prefix, int layer, const LlamaDims& dims) {
  const std::string base = layer_prefix(prefix, layer);
  Module module = make_module(base + "self_attn", ModuleKind::kAttention, Stream::kText, layer);
  module.dims.hidden = dims.hidden;
  module.dims.heads = dims.heads;
  module.dims.kv_heads = dims.kv_heads;
  module.dims.head_dim = dims.head_dim;
  const int64_t q_width = dims.heads * dims.head_dim;
  const int64_t kv_width = dims.kv_heads * dims.head_dim;
  add_norm(module, base + "input_layernorm", dims.hidden, /*has_bias=*/false);
  add_column_linear(module, module.path + ".q_proj", q_width, dims.hidden, dims.heads,
                    dims.qkv_bias);
  add_column_linear(module, module.path + ".k_proj", kv_width, dims.hidden, dims.kv_heads,
                    dims.qkv_bias, /*replicable=*/true);
  add_column_linear(module, module.path + ".v_proj", kv_width, dims.hidden, dims.kv_heads,
                    dims.qkv_bias, /*replicable=*/true);
  add_row_linear(module, module.path + ".o_proj", dims.hidden, q_width, dims.heads, dims.o_bias);
  return module;
}

Module llama_mlp_module(const std::string& prefix, int layer, const LlamaDims& dims) {
  const std::string base = layer_prefix(prefix, layer);
  Module module = make_module(base + "mlp", ModuleKind::kMlp, Stream::kText, layer);
  module.dims.hidden = dims.hidden;
  module.dims.intermediate = dims.intermediate;
  add_norm(module, base + "post_attention_layernorm", dims.hidden, /*has_bias=*/false);
  add_column_linear(module, module.path + ".gate_proj", dims.intermediate, dims.hidden,
                    dims.intermediate, dims.mlp_bias);
  add_column_linear(module, module.path + ".up_proj", dims.intermediate, dims.hidden,
                    dims.intermediate, dims.mlp_bias);
  add_row_linear(module, module.path + ".down_proj", dims.hidden, dims.intermediate,
                 dims.intermediate, dims.mlp_bias);
  return module;
}

Module llama_lm_head_module(const std::string& prefix, const LlamaDims& dims) {
  Module module = make_module(prefix + "lm_head", ModuleKind::kLmHead, Stream::kText);
  module.dims.hidden = dims.hidden;
  module.dims.vocab = dims.vocab;
  add_norm(module, prefix + "model.norm", dims.hidden, /*has_bias=*/false);
  if (!dims.tie_word_embeddings) {
    add_param(module, module.path + ".weight", {dims.vocab, dims.hidden},
              split_units(0, dims.vocab));
  }
  return module;
}

ModelGraph build_llama_graph(const nlohmann::json& config) {
  ModelGraph graph;
  graph.family = "llama";
  graph.config = config;
  ConfigReader reader(graph.config, "", &graph.defaulted_fields);
  graph.model_type = reader.text("model_type", "llama");
  const LlamaDims dims = read_llama_dims(reader, graph.model_type);

  graph.modules.push_back(llama_embedding_module("", dims));
  for (int layer = 0; layer < dims.layers; ++layer) {
    graph.modules.push_back(llama_attention_module("", layer, dims));
    graph.modules.push_back(llama_mlp_module("", layer, dims));
  }
  graph.modules.push_back(llama_lm_head_module("", dims));
  if (dims.tie_word_embeddings) graph.tied_lm_head_to = "model.embed_tokens.weight";
  graph.hidden = dims.hidden;
  graph.vocab = dims.vocab;
  graph.workload.max_target_positions = dims.max_positions;
  return graph;
}

}  // namespace shardplan
