// Qwen2-MoE's typed config and module tree (see qwen2_moe_graph.h).
#include "models/qwen2_moe/qwen2_moe_graph.h"

#include <algorithm>
#include <memory>
#include <string>

#include "models/graph/config_reader.h"
#include "models/graph/module_builder.h"
#include "models/llama/llama_graph.h"

namespace shardplan {
namespace {

// transformers' Qwen2MoeConfig defaults (those of Qwen1.5-MoE-A2.7B, but max_position_embeddings
// 32768 and rope_theta 10000).
LlamaVariant qwen2_moe_variant() {
  // NOTE: q/k/v biases follow the config's `qkv_bias` (default true), read below.
  return {151936, 2048, 5632, 24, 16, 16, 32768, 1e-6, 10000.0, LlamaVariant::Bias::kNone,
          LlamaVariant::Window::kQwenUseSlidingWindow};
}

std::vector<int64_t> read_mlp_only_layers(ConfigReader& reader, int64_t layers) {
  if (!reader.has("mlp_only_layers")) {
    reader.set_derived("mlp_only_layers", nlohmann::json::array());
    return {};
  }
  const nlohmann::json& value = reader.object().at("mlp_only_layers");
  if (!value.is_array()) {
    throw ConfigError(reader.field("mlp_only_layers") + " must be a list of layer indices, got " + describe_json(value));
  }
  std::vector<int64_t> out;
  for (const nlohmann::json& item : value) {
    if (!item.is_number_integer() || item.get<int64_t>() < 0 || item.get<int64_t>() >= layers) {
      throw ConfigError(reader.field("mlp_only_layers") + " entries must be layer indices in [0, " +
                        std::to_string(layers - 1) + "], got " + describe_json(item));
    }
    out.push_back(item.get<int64_t>());
  }
  return out;
}

Module qwen2_moe_module(int layer, const Qwen2MoeConfig& c) {
  const std::string base = "model.layers." + std::to_string(layer) + ".";
  Module module = make_module(base + "mlp", ModuleKind::kMoe, Stream::kText, layer);
  module.dims.hidden = c.hidden;
  module.dims.intermediate = c.moe_intermediate;
  module.dims.experts = c.experts;
  module.dims.experts_per_token = c.experts_per_token;
  module.dims.shared_expert_intermediate = c.shared_expert_intermediate;
  add_norm(module, base + "post_attention_layernorm", c.hidden, /*has_bias=*/false);
  add_param(module, module.path + ".gate.weight", {c.experts, c.hidden}, no_split(), ParamRole::kRouter);
  for (int expert = 0; expert < c.experts; ++expert) {
    const std::string prefix = module.path + ".experts." + std::to_string(expert);
    const int64_t units = c.moe_intermediate;
    add_param(module, prefix + ".gate_proj.weight", {units, c.hidden}, split_units(0, units), ParamRole::kGate, expert);
    add_param(module, prefix + ".up_proj.weight", {units, c.hidden}, split_units(0, units), ParamRole::kUp, expert);
    add_param(module, prefix + ".down_proj.weight", {c.hidden, units}, split_units(1, units), ParamRole::kDown, expert);
  }
  const size_t first_shared = module.params.size();
  add_gated_mlp(module, module.path + ".shared_expert", c.hidden, c.shared_expert_intermediate, /*has_bias=*/false);
  add_param(module, module.path + ".shared_expert_gate.weight", {1, c.hidden}, no_split(),
            ParamRole::kSharedExpertGate);
  for (size_t i = first_shared; i < module.params.size(); ++i) module.params[i].shared_expert = true;
  return module;
}

}  // namespace

bool Qwen2MoeConfig::is_sparse(int64_t layer) const {
  return std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) == mlp_only_layers.end() &&
         experts > 0 && (layer + 1) % decoder_sparse_step == 0;
}

ModelGraph build_qwen2_moe_graph(const nlohmann::json& config) {
  ModelGraph graph;
  graph.family = qwen2_moe_family().name;
  graph.config = config;
  ConfigReader reader(graph.config, "", &graph.defaulted_fields);
  auto typed = std::make_shared<Qwen2MoeConfig>();
  Qwen2MoeConfig& c = *typed;
  c.model_type = graph.model_type = reader.text("model_type", "qwen2_moe");
  read_llama_config(reader, qwen2_moe_variant(), c);
  c.qkv_bias = reader.flag("qkv_bias", true);
  c.experts = reader.size("num_experts", 60);
  c.experts_per_token = reader.size("num_experts_per_tok", 4);
  if (c.experts_per_token > c.experts) {
    throw ConfigError("num_experts_per_tok " + std::to_string(c.experts_per_token) + " exceeds num_experts " +
                      std::to_string(c.experts));
  }
  c.moe_intermediate = reader.size("moe_intermediate_size", 1408);
  c.shared_expert_intermediate = reader.size("shared_expert_intermediate_size", 5632);
  c.norm_topk_prob = reader.flag("norm_topk_prob", false);
  c.decoder_sparse_step = reader.size("decoder_sparse_step", 1);
  c.mlp_only_layers = read_mlp_only_layers(reader, c.layers);
  graph.family_config = typed;

  add_llama_decoder(graph, "", c, [&](int layer) {
    return c.is_sparse(layer) ? qwen2_moe_module(layer, c) : llama_mlp_module("", layer, c);
  });
  return graph;
}

const Family& qwen2_moe_family() {
  static const Family family{"qwen2_moe", {"qwen2_moe"}, &build_qwen2_moe_graph, nullptr};
  return family;
}

}  // namespace shardplan
