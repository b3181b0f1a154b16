// Llama, Mistral and Qwen2 decoders: transformers' per-model_type defaults and the module tree.
#include "models/llama/llama_graph.h"

#include <memory>
#include <optional>

#include "models/graph/module_builder.h"

namespace shardplan {
namespace {

std::string layer_prefix(const std::string& prefix, int layer) {
  return prefix + "model.layers." + std::to_string(layer) + ".";
}

}  // namespace

Module llama_embedding_module(const std::string& prefix, const LlamaConfig& dims) {
  Module module = make_module(prefix + "model.embed_tokens", ModuleKind::kEmbedding, Stream::kText);
  module.dims.hidden = dims.hidden;
  module.dims.vocab = dims.vocab;
  add_param(module, module.path + ".weight", {dims.vocab, dims.hidden}, split_units(0, dims.vocab),
            ParamRole::kEmbedding);
  return module;
}

Module llama_attention_module(const std::string& prefix, int layer, const LlamaConfig& dims) {
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
                    dims.qkv_bias, ParamRole::kQuery);
  add_column_linear(module, module.path + ".k_proj", kv_width, dims.hidden, dims.kv_heads,
                    dims.qkv_bias, ParamRole::kKey, /*replicable=*/true);
  add_column_linear(module, module.path + ".v_proj", kv_width, dims.hidden, dims.kv_heads,
                    dims.qkv_bias, ParamRole::kValue, /*replicable=*/true);
  add_row_linear(module, module.path + ".o_proj", dims.hidden, q_width, dims.heads, dims.o_bias,
                 ParamRole::kOutput);
  return module;
}

Module llama_mlp_module(const std::string& prefix, int layer, const LlamaConfig& dims) {
  const std::string base = layer_prefix(prefix, layer);
  Module module = make_module(base + "mlp", ModuleKind::kMlp, Stream::kText, layer);
  module.dims.hidden = dims.hidden;
  module.dims.intermediate = dims.intermediate;
  add_norm(module, base + "post_attention_layernorm", dims.hidden, /*has_bias=*/false);
  add_gated_mlp(module, module.path, dims.hidden, dims.intermediate, dims.mlp_bias);
  return module;
}

Module llama_lm_head_module(const std::string& prefix, const LlamaConfig& dims) {
  Module module = make_module(prefix + "lm_head", ModuleKind::kLmHead, Stream::kText);
  module.dims.hidden = dims.hidden;
  module.dims.vocab = dims.vocab;
  add_norm(module, prefix + "model.norm", dims.hidden, /*has_bias=*/false, ParamRole::kFinalNorm);
  if (!dims.tie_word_embeddings) {
    add_param(module, module.path + ".weight", {dims.vocab, dims.hidden},
              split_units(0, dims.vocab), ParamRole::kLmHead);
  }
  return module;
}

void add_gated_mlp(Module& module, const std::string& prefix, int64_t hidden, int64_t intermediate,
                   bool has_bias) {
  add_column_linear(module, prefix + ".gate_proj", intermediate, hidden, intermediate, has_bias,
                    ParamRole::kGate);
  add_column_linear(module, prefix + ".up_proj", intermediate, hidden, intermediate, has_bias,
                    ParamRole::kUp);
  add_row_linear(module, prefix + ".down_proj", hidden, intermediate, intermediate, has_bias,
                 ParamRole::kDown);
}

ModelGraph build_llama_graph(const nlohmann::json& config) {
  ModelGraph graph;
  graph.family = llama_family().name;
  graph.config = config;
  ConfigReader reader(graph.config, "", &graph.defaulted_fields);
  auto typed = std::make_shared<LlamaConfig>();
  typed->model_type = graph.model_type = reader.text("model_type", "llama");
  read_llama_config(reader, llama_variant(graph.model_type), *typed);
  const LlamaConfig& dims = *typed;
  graph.family_config = typed;

  add_llama_decoder(graph, "", dims, [&](int layer) { return llama_mlp_module("", layer, dims); });
  return graph;
}

void add_llama_decoder(ModelGraph& graph, const std::string& prefix, const LlamaConfig& config,
                       const std::function<Module(int layer)>& mlp) {
  graph.modules.push_back(llama_embedding_module(prefix, config));
  for (int layer = 0; layer < config.layers; ++layer) {
    graph.modules.push_back(llama_attention_module(prefix, layer, config));
    graph.modules.push_back(mlp(layer));
  }
  graph.modules.push_back(llama_lm_head_module(prefix, config));
  if (config.tie_word_embeddings) graph.tied_lm_head_to = prefix + "model.embed_tokens.weight";
  graph.hidden = config.hidden;
  graph.vocab = config.vocab;
  graph.workload.max_target_positions = config.max_positions;
}

const Family& llama_family() {
  static const Family family{"llama", {"llama", "mistral", "qwen2"}, &build_llama_graph, nullptr};
  return family;
}

}  // namespace shardplan
