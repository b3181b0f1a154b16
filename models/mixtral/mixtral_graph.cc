// Mixtral's module tree: Llama attention and sparse MoE blocks with per-expert tensors.
#include "models/mixtral/mixtral_graph.h"

#include "models/graph/config_reader.h"
#include "models/graph/module_builder.h"

#include <memory>

namespace shardplan {

Module mixtral_moe_module(int layer, const MixtralConfig& dims) {
  const int64_t experts = dims.experts;
  const std::string base = "model.layers." + std::to_string(layer) + ".";
  Module module = make_module(base + "block_sparse_moe", ModuleKind::kMoe, Stream::kText, layer);
  module.dims.hidden = dims.hidden;
  module.dims.intermediate = dims.intermediate;
  module.dims.experts = experts;
  module.dims.experts_per_token = dims.experts_per_token;
  add_norm(module, base + "post_attention_layernorm", dims.hidden, /*has_bias=*/false);
  add_param(module, module.path + ".gate.weight", {experts, dims.hidden}, no_split(), ParamRole::kRouter);
  for (int expert = 0; expert < experts; ++expert) {
    const std::string prefix = module.path + ".experts." + std::to_string(expert);
    // w1 = gate, w3 = up (column-parallel); w2 = down (row-parallel).
    add_param(module, prefix + ".w1.weight", {dims.intermediate, dims.hidden},
              split_units(0, dims.intermediate), ParamRole::kGate, expert);
    add_param(module, prefix + ".w2.weight", {dims.hidden, dims.intermediate},
              split_units(1, dims.intermediate), ParamRole::kDown, expert);
    add_param(module, prefix + ".w3.weight", {dims.intermediate, dims.hidden},
              split_units(0, dims.intermediate), ParamRole::kUp, expert);
  }
  return module;
}

ModelGraph build_mixtral_graph(const nlohmann::json& config) {
  ModelGraph graph;
  graph.family = mixtral_family().name;
  graph.config = config;
  ConfigReader reader(graph.config, "", &graph.defaulted_fields);
  auto typed = std::make_shared<MixtralConfig>();
  typed->model_type = graph.model_type = reader.text("model_type", "mixtral");
  read_llama_config(reader, llama_variant("mixtral"), *typed);
  typed->experts = reader.size("num_local_experts", 8);
  typed->experts_per_token = reader.size("num_experts_per_tok", 2);
  if (typed->experts_per_token > typed->experts) {
    throw ConfigError("num_experts_per_tok " + std::to_string(typed->experts_per_token) +
                      " exceeds num_local_experts " + std::to_string(typed->experts));
  }
  graph.family_config = typed;
  const MixtralConfig& dims = *typed;

  add_llama_decoder(graph, "", dims, [&](int layer) { return mixtral_moe_module(layer, dims); });
  return graph;
}

const Family& mixtral_family() {
  static const Family family{"mixtral", {"mixtral"}, &build_mixtral_graph, nullptr};
  return family;
}

}  // namespace shardplan
