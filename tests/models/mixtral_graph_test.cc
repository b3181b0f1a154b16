// Mixtral: the Hub layout of the MoE block (per-expert w1/w2/w3), counts, dims, errors.
#include "models/mixtral/mixtral_graph.h"

#include <gtest/gtest.h>

#include "tests/models/graph_test_util.h"

namespace shardplan {
namespace {

using testing::expect_config_error;
using testing::load_config;
using testing::module_at;
using testing::params_text;

TEST(MixtralGraphTest, Mixtral8x7BParameterCount) {
  EXPECT_EQ(load_config("mixtral-8x7b.json").num_parameters(), 46702792704);
}

TEST(MixtralGraphTest, ModuleOrder) {
  ModelGraph graph = load_config("mixtral-8x7b.json");
  ASSERT_EQ(graph.modules.size(), 2u + 2 * 32);
  EXPECT_EQ(graph.modules[0].path, "model.embed_tokens");
  EXPECT_EQ(graph.modules[1].path, "model.layers.0.self_attn");
  EXPECT_EQ(graph.modules[2].path, "model.layers.0.block_sparse_moe");
  EXPECT_EQ(graph.modules[2].kind, ModuleKind::kMoe);
  EXPECT_EQ(graph.modules[2].layer, 0);
  EXPECT_EQ(graph.modules[64].path, "model.layers.31.block_sparse_moe");
  EXPECT_EQ(graph.modules[65].path, "lm_head");
}

TEST(MixtralGraphTest, FirstLayerMoeTensorsInHubLayout) {
  ModelGraph graph = load_config("mixtral-8x7b.json");
  const Module& moe = module_at(graph, "model.layers.0.block_sparse_moe");
  std::vector<std::string> expected = {
      "model.layers.0.post_attention_layernorm.weight [4096] none",
      "model.layers.0.block_sparse_moe.gate.weight [8, 4096] none",
  };
  for (int e = 0; e < 8; ++e) {
    const std::string prefix = "model.layers.0.block_sparse_moe.experts." + std::to_string(e);
    const std::string tag = " expert " + std::to_string(e);
    expected.push_back(prefix + ".w1.weight [14336, 4096] dim0/14336" + tag);
    expected.push_back(prefix + ".w2.weight [4096, 14336] dim1/14336" + tag);
    expected.push_back(prefix + ".w3.weight [14336, 4096] dim0/14336" + tag);
  }
  EXPECT_EQ(params_text(moe), expected);
  EXPECT_EQ(moe.dims.experts, 8);
  EXPECT_EQ(moe.dims.experts_per_token, 2);
  EXPECT_EQ(moe.dims.intermediate, 14336);
  EXPECT_EQ(moe.dims.hidden, 4096);
}

TEST(MixtralGraphTest, EveryLayerHasEightExpertsTimesThreeTensors) {
  ModelGraph graph = load_config("mixtral-8x7b.json");
  int moe_modules = 0;
  for (const Module& module : graph.modules) {
    if (module.kind != ModuleKind::kMoe) continue;
    ++moe_modules;
    std::vector<int> per_expert(8, 0);
    for (const Param& param : module.params) {
      if (param.expert >= 0) ++per_expert.at(param.expert);
    }
    EXPECT_EQ(per_expert, std::vector<int>(8, 3)) << module.path;
  }
  EXPECT_EQ(moe_modules, 32);
}

TEST(MixtralGraphTest, AttentionAsLlamaWithoutBiases) {
  ModelGraph graph = load_config("mixtral-8x7b.json");
  EXPECT_EQ(params_text(module_at(graph, "model.layers.0.self_attn")),
            (std::vector<std::string>{
                "model.layers.0.input_layernorm.weight [4096] none",
                "model.layers.0.self_attn.q_proj.weight [4096, 4096] dim0/32",
                "model.layers.0.self_attn.k_proj.weight [1024, 4096] dim0/8 replicable",
                "model.layers.0.self_attn.v_proj.weight [1024, 4096] dim0/8 replicable",
                "model.layers.0.self_attn.o_proj.weight [4096, 4096] dim1/32",
            }));
  EXPECT_EQ(graph.workload.max_target_positions, 32768);
}

TEST(MixtralGraphTest, TinyMixtral) {
  ModelGraph graph = load_config("tiny-mixtral.json");  // hidden 128, I 256, 8 experts, 2 layers
  const int64_t attention = 128 + 128 * 128 * 2 + 2 * (2 * 16) * 128;
  const int64_t moe = 128 + 8 * 128 + 8 * 3 * 256 * 128;
  EXPECT_EQ(graph.num_parameters(), 2 * 512 * 128 + 2 * (attention + moe) + 128);
}

TEST(MixtralGraphTest, Defaults) {
  ModelGraph graph = build_model_graph({{"model_type", "mixtral"}, {"num_hidden_layers", 1}});
  EXPECT_EQ(graph.config["num_local_experts"], 8);
  EXPECT_EQ(graph.config["num_experts_per_tok"], 2);
  EXPECT_EQ(graph.config["num_key_value_heads"], 8);
  EXPECT_EQ(graph.config["rms_norm_eps"], 1e-5);
  EXPECT_EQ(graph.config["rope_theta"], 1e6);
}

TEST(MixtralGraphTest, ConfigErrors) {
  expect_config_error(
      {{"model_type", "mixtral"}, {"num_local_experts", 2}, {"num_experts_per_tok", 3}},
      {"num_experts_per_tok 3 exceeds num_local_experts 2"});
  expect_config_error({{"model_type", "mixtral"}, {"num_local_experts", 0}},
                      {"num_local_experts"});
}

}  // namespace
}  // namespace shardplan
