// Qwen2-MoE: the Hub layout of the MoE block (per-expert gate/up/down_proj, the shared expert and
// its gate), counts, dense layers, defaults, roles, errors.
#include "models/qwen2_moe/qwen2_moe_graph.h"

#include <gtest/gtest.h>

#include "models/graph/registry.h"
#include "tests/models/graph_test_util.h"

namespace shardplan {
namespace {

using testing::expect_config_error;
using testing::load_config;
using testing::module_at;
using testing::params_text;

TEST(Qwen2MoeGraphTest, Qwen15MoeA27BParameterCount) {
  // 14.3B as published: 24 layers of attention (q/k/v biases) and a MoE of 60 experts of 1408 rows
  // plus a shared expert of 5632, untied embeddings of 151936 x 2048.
  const ModelGraph graph = load_config("qwen1.5-moe-a2.7b.json");
  EXPECT_EQ(graph.num_parameters(), 14315784192);
  EXPECT_EQ(graph.family, qwen2_moe_family().name);
  ASSERT_EQ(graph.modules.size(), 2u + 2 * 24);
  EXPECT_EQ(graph.modules[2].path, "model.layers.0.mlp");
  EXPECT_EQ(graph.modules[2].kind, ModuleKind::kMoe);
}

TEST(Qwen2MoeGraphTest, MoeTensorsInHubLayoutWithTheSharedExpertMarked) {
  const ModelGraph graph = load_config("tiny-qwen2-moe.json");  // hidden 128, 8 experts of 64, shared 96
  const Module& moe = module_at(graph, "model.layers.1.mlp");
  std::vector<std::string> expected = {
      "model.layers.1.post_attention_layernorm.weight [128] none",
      "model.layers.1.mlp.gate.weight [8, 128] none",
  };
  for (int e = 0; e < 8; ++e) {
    const std::string prefix = "model.layers.1.mlp.experts." + std::to_string(e);
    const std::string tag = " expert " + std::to_string(e);
    expected.push_back(prefix + ".gate_proj.weight [64, 128] dim0/64" + tag);
    expected.push_back(prefix + ".up_proj.weight [64, 128] dim0/64" + tag);
    expected.push_back(prefix + ".down_proj.weight [128, 64] dim1/64" + tag);
  }
  expected.push_back("model.layers.1.mlp.shared_expert.gate_proj.weight [96, 128] dim0/96");
  expected.push_back("model.layers.1.mlp.shared_expert.up_proj.weight [96, 128] dim0/96");
  expected.push_back("model.layers.1.mlp.shared_expert.down_proj.weight [128, 96] dim1/96");
  expected.push_back("model.layers.1.mlp.shared_expert_gate.weight [1, 128] none");
  EXPECT_EQ(params_text(moe), expected);
  EXPECT_EQ(moe.dims.experts, 8);
  EXPECT_EQ(moe.dims.experts_per_token, 2);
  EXPECT_EQ(moe.dims.intermediate, 64);
  EXPECT_EQ(moe.dims.shared_expert_intermediate, 96);
  int shared = 0;
  for (const Param& p : moe.params) {
    if (!p.shared_expert) continue;
    ++shared;
    EXPECT_NE(p.name.find("shared_expert"), std::string::npos) << p.name;
    EXPECT_EQ(p.expert, -1);
  }
  EXPECT_EQ(shared, 4);
  // Roles, as the forward binds them.
  EXPECT_EQ(moe.params[1].role, ParamRole::kRouter);
  EXPECT_EQ(moe.params[2].role, ParamRole::kGate);
  EXPECT_EQ(moe.params[3].role, ParamRole::kUp);
  EXPECT_EQ(moe.params[4].role, ParamRole::kDown);
  EXPECT_EQ(moe.params.back().role, ParamRole::kSharedExpertGate);
  // Qwen2 attention: q/k/v biases, none on o_proj.
  const Module& attention = module_at(graph, "model.layers.0.self_attn");
  EXPECT_EQ(params_text(attention).size(), 1u + 4 + 3);
}

TEST(Qwen2MoeGraphTest, MlpOnlyLayersAndSparseStepAreDense) {
  const ModelGraph graph = build_model_graph({{"model_type", "qwen2_moe"}, {"num_hidden_layers", 4},
                                              {"decoder_sparse_step", 2}, {"mlp_only_layers", {3}}});
  // Sparse where (layer + 1) % 2 == 0 and not listed: layer 1 only.
  EXPECT_EQ(module_at(graph, "model.layers.0.mlp").kind, ModuleKind::kMlp);
  EXPECT_EQ(module_at(graph, "model.layers.1.mlp").kind, ModuleKind::kMoe);
  EXPECT_EQ(module_at(graph, "model.layers.2.mlp").kind, ModuleKind::kMlp);
  EXPECT_EQ(module_at(graph, "model.layers.3.mlp").kind, ModuleKind::kMlp);
  EXPECT_EQ(module_at(graph, "model.layers.0.mlp").dims.intermediate, 5632);  // intermediate_size
}

TEST(Qwen2MoeGraphTest, DefaultsAreTransformers) {
  const ModelGraph graph = build_model_graph({{"model_type", "qwen2_moe"}, {"num_hidden_layers", 1}});
  const Qwen2MoeConfig& c = graph.typed_config<Qwen2MoeConfig>();
  EXPECT_EQ(c.experts, 60);
  EXPECT_EQ(c.experts_per_token, 4);
  EXPECT_EQ(c.moe_intermediate, 1408);
  EXPECT_EQ(c.shared_expert_intermediate, 5632);
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_EQ(c.kv_heads, 16);
  EXPECT_EQ(graph.config["num_experts"], 60);
  EXPECT_EQ(graph.config["mlp_only_layers"], nlohmann::json::array());
  EXPECT_FALSE(build_model_graph({{"model_type", "qwen2_moe"}, {"num_hidden_layers", 1}, {"qkv_bias", false}})
                   .typed_config<Qwen2MoeConfig>()
                   .qkv_bias);
}

TEST(Qwen2MoeGraphTest, ConfigErrors) {
  expect_config_error({{"model_type", "qwen2_moe"}, {"num_experts", 2}, {"num_experts_per_tok", 3}},
                      {"num_experts_per_tok 3 exceeds num_experts 2"});
  expect_config_error({{"model_type", "qwen2_moe"}, {"num_hidden_layers", 2}, {"mlp_only_layers", {5}}},
                      {"mlp_only_layers", "[0, 1]", "5"});
  expect_config_error({{"model_type", "qwen2_moe"}, {"mlp_only_layers", "all"}}, {"mlp_only_layers", "list"});
  expect_config_error({{"model_type", "qwen2_moe"}, {"shared_expert_intermediate_size", 0}},
                      {"shared_expert_intermediate_size"});
}

}  // namespace
}  // namespace shardplan
