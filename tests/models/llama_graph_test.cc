// Llama / Mistral / Qwen2: parameter counts, Hub names and shapes, splits, defaults, errors.
#include "models/llama/llama_graph.h"

#include <algorithm>

#include <gtest/gtest.h>

#include "tests/models/graph_test_util.h"

namespace shardplan {
namespace {

using testing::expect_config_error;
using testing::load_config;
using testing::module_at;
using testing::params_text;

TEST(LlamaGraphTest, Llama3_8BParameterCount) {
  // transformers: LlamaForCausalLM(llama-3-8b config).num_parameters() == 8030261248.
  EXPECT_EQ(load_config("llama-3-8b.json").num_parameters(), 8030261248);
}

TEST(LlamaGraphTest, Llama3_70BParameterCount) {
  EXPECT_EQ(load_config("llama-3-70b.json").num_parameters(), 70553706496);
}

TEST(LlamaGraphTest, Llama3_8BModuleOrder) {
  ModelGraph graph = load_config("llama-3-8b.json");
  std::vector<std::string> expected = {"model.embed_tokens"};
  for (int layer = 0; layer < 32; ++layer) {
    expected.push_back("model.layers." + std::to_string(layer) + ".self_attn");
    expected.push_back("model.layers." + std::to_string(layer) + ".mlp");
  }
  expected.push_back("lm_head");
  EXPECT_EQ(testing::module_paths(graph.modules), expected);
  EXPECT_EQ(graph.modules.front().kind, ModuleKind::kEmbedding);
  EXPECT_EQ(graph.modules[1].kind, ModuleKind::kAttention);
  EXPECT_EQ(graph.modules[2].kind, ModuleKind::kMlp);
  EXPECT_EQ(graph.modules.back().kind, ModuleKind::kLmHead);
  EXPECT_EQ(graph.modules[1].layer, 0);
  EXPECT_EQ(graph.modules[64].layer, 31);
  EXPECT_EQ(graph.modules.front().layer, -1);
  EXPECT_EQ(graph.modules.back().layer, -1);
  for (const Module& module : graph.modules) EXPECT_EQ(module.stream, Stream::kText);
}

TEST(LlamaGraphTest, Llama3_8BFirstLayerTensors) {
  ModelGraph graph = load_config("llama-3-8b.json");
  EXPECT_EQ(params_text(module_at(graph, "model.embed_tokens")),
            (std::vector<std::string>{"model.embed_tokens.weight [128256, 4096] dim0/128256"}));
  EXPECT_EQ(params_text(module_at(graph, "model.layers.0.self_attn")),
            (std::vector<std::string>{
                "model.layers.0.input_layernorm.weight [4096] none",
                "model.layers.0.self_attn.q_proj.weight [4096, 4096] dim0/32",
                "model.layers.0.self_attn.k_proj.weight [1024, 4096] dim0/8 replicable",
                "model.layers.0.self_attn.v_proj.weight [1024, 4096] dim0/8 replicable",
                "model.layers.0.self_attn.o_proj.weight [4096, 4096] dim1/32",
            }));
  EXPECT_EQ(params_text(module_at(graph, "model.layers.0.mlp")),
            (std::vector<std::string>{
                "model.layers.0.post_attention_layernorm.weight [4096] none",
                "model.layers.0.mlp.gate_proj.weight [14336, 4096] dim0/14336",
                "model.layers.0.mlp.up_proj.weight [14336, 4096] dim0/14336",
                "model.layers.0.mlp.down_proj.weight [4096, 14336] dim1/14336",
            }));
  EXPECT_EQ(params_text(module_at(graph, "lm_head")),
            (std::vector<std::string>{"model.norm.weight [4096] none",
                                      "lm_head.weight [128256, 4096] dim0/128256"}));
  EXPECT_FALSE(graph.tied_lm_head_to.has_value());
}

TEST(LlamaGraphTest, Llama3_8BDims) {
  ModelGraph graph = load_config("llama-3-8b.json");
  const ModuleDims& attention = module_at(graph, "model.layers.7.self_attn").dims;
  EXPECT_EQ(attention.hidden, 4096);
  EXPECT_EQ(attention.heads, 32);
  EXPECT_EQ(attention.kv_heads, 8);
  EXPECT_EQ(attention.head_dim, 128);
  const ModuleDims& mlp = module_at(graph, "model.layers.7.mlp").dims;
  EXPECT_EQ(mlp.hidden, 4096);
  EXPECT_EQ(mlp.intermediate, 14336);
  EXPECT_EQ(module_at(graph, "model.embed_tokens").dims.vocab, 128256);
  EXPECT_EQ(module_at(graph, "lm_head").dims.vocab, 128256);
  EXPECT_EQ(module_at(graph, "lm_head").dims.hidden, 4096);
  EXPECT_EQ(graph.hidden, 4096);
  EXPECT_EQ(graph.vocab, 128256);
  EXPECT_EQ(graph.workload.max_target_positions, 8192);
  EXPECT_EQ(graph.workload.tokens_per_image, 0);
}

TEST(LlamaGraphTest, Qwen2HasQkvBiasesAndTiedHead) {
  ModelGraph graph = load_config("tiny-qwen2.json");  // hidden 128, 4 heads, 2 KV heads
  EXPECT_EQ(params_text(module_at(graph, "model.layers.0.self_attn")),
            (std::vector<std::string>{
                "model.layers.0.input_layernorm.weight [128] none",
                "model.layers.0.self_attn.q_proj.weight [128, 128] dim0/4",
                "model.layers.0.self_attn.q_proj.bias [128] dim0/4",
                "model.layers.0.self_attn.k_proj.weight [64, 128] dim0/2 replicable",
                "model.layers.0.self_attn.k_proj.bias [64] dim0/2 replicable",
                "model.layers.0.self_attn.v_proj.weight [64, 128] dim0/2 replicable",
                "model.layers.0.self_attn.v_proj.bias [64] dim0/2 replicable",
                "model.layers.0.self_attn.o_proj.weight [128, 128] dim1/4",
            }));
  EXPECT_EQ(params_text(module_at(graph, "model.layers.0.mlp")).size(), 4u);  // no MLP biases
  // tie_word_embeddings: no lm_head.weight, counted once.
  EXPECT_EQ(params_text(module_at(graph, "lm_head")),
            (std::vector<std::string>{"model.norm.weight [128] none"}));
  EXPECT_EQ(graph.tied_lm_head_to, "model.embed_tokens.weight");
  // embed 512*128 + 2 layers * (attn 128 + 128*128*2 + 64*128*2 + 128 + 64*2 + mlp 128 +
  // 384*128*3) + norm 128
  const int64_t per_layer = (128 + 2 * 128 * 128 + 2 * 64 * 128 + 128 + 2 * 64) +
                            (128 + 3 * 384 * 128);
  EXPECT_EQ(graph.num_parameters(), 512 * 128 + 2 * per_layer + 128);
}

TEST(LlamaGraphTest, LlamaAttentionBiasAndMlpBias) {
  ModelGraph graph = build_model_graph({{"model_type", "llama"},
                                        {"hidden_size", 64},
                                        {"intermediate_size", 96},
                                        {"num_attention_heads", 4},
                                        {"num_key_value_heads", 2},
                                        {"num_hidden_layers", 1},
                                        {"vocab_size", 100},
                                        {"attention_bias", true},
                                        {"mlp_bias", true}});
  EXPECT_EQ(params_text(module_at(graph, "model.layers.0.self_attn")),
            (std::vector<std::string>{
                "model.layers.0.input_layernorm.weight [64] none",
                "model.layers.0.self_attn.q_proj.weight [64, 64] dim0/4",
                "model.layers.0.self_attn.q_proj.bias [64] dim0/4",
                "model.layers.0.self_attn.k_proj.weight [32, 64] dim0/2 replicable",
                "model.layers.0.self_attn.k_proj.bias [32] dim0/2 replicable",
                "model.layers.0.self_attn.v_proj.weight [32, 64] dim0/2 replicable",
                "model.layers.0.self_attn.v_proj.bias [32] dim0/2 replicable",
                "model.layers.0.self_attn.o_proj.weight [64, 64] dim1/4",
                "model.layers.0.self_attn.o_proj.bias [64] none",
            }));
  EXPECT_EQ(params_text(module_at(graph, "model.layers.0.mlp")),
            (std::vector<std::string>{
                "model.layers.0.post_attention_layernorm.weight [64] none",
                "model.layers.0.mlp.gate_proj.weight [96, 64] dim0/96",
                "model.layers.0.mlp.gate_proj.bias [96] dim0/96",
                "model.layers.0.mlp.up_proj.weight [96, 64] dim0/96",
                "model.layers.0.mlp.up_proj.bias [96] dim0/96",
                "model.layers.0.mlp.down_proj.weight [64, 96] dim1/96",
                "model.layers.0.mlp.down_proj.bias [64] none",
            }));
}

TEST(LlamaGraphTest, MistralHasNoBiasesWhateverTheConfigSays) {
  // transformers' MistralAttention / MistralMLP are built with bias=False unconditionally.
  ModelGraph graph = build_model_graph({{"model_type", "mistral"},
                                        {"hidden_size", 64},
                                        {"num_attention_heads", 4},
                                        {"num_key_value_heads", 2},
                                        {"num_hidden_layers", 1},
                                        {"attention_bias", true},
                                        {"mlp_bias", true}});
  EXPECT_EQ(module_at(graph, "model.layers.0.self_attn").params.size(), 5u);
  EXPECT_EQ(module_at(graph, "model.layers.0.mlp").params.size(), 4u);
}

TEST(LlamaGraphTest, ExplicitHeadDim) {
  // head_dim decoupled from hidden_size / heads: q is heads * head_dim wide, and hidden_size
  // need not be a multiple of the heads.
  ModelGraph graph = build_model_graph({{"model_type", "mistral"},
                                        {"hidden_size", 100},
                                        {"num_attention_heads", 8},
                                        {"num_key_value_heads", 2},
                                        {"head_dim", 32},
                                        {"num_hidden_layers", 1}});
  const Module& attention = module_at(graph, "model.layers.0.self_attn");
  EXPECT_EQ(attention.dims.head_dim, 32);
  EXPECT_EQ(params_text(attention)[1], "model.layers.0.self_attn.q_proj.weight [256, 100] dim0/8");
  EXPECT_EQ(params_text(attention)[2],
            "model.layers.0.self_attn.k_proj.weight [64, 100] dim0/2 replicable");
  EXPECT_EQ(params_text(attention)[4], "model.layers.0.self_attn.o_proj.weight [100, 256] dim1/8");
}

TEST(LlamaGraphTest, LlamaDefaultsAreLlamaConfigs) {
  ModelGraph graph = build_model_graph({{"model_type", "llama"}});
  EXPECT_EQ(graph.config["vocab_size"], 32000);
  EXPECT_EQ(graph.config["hidden_size"], 4096);
  EXPECT_EQ(graph.config["intermediate_size"], 11008);
  EXPECT_EQ(graph.config["num_hidden_layers"], 32);
  EXPECT_EQ(graph.config["num_attention_heads"], 32);
  EXPECT_EQ(graph.config["num_key_value_heads"], 32);
  EXPECT_EQ(graph.config["head_dim"], 128);
  EXPECT_EQ(graph.config["max_position_embeddings"], 2048);
  EXPECT_EQ(graph.config["rms_norm_eps"], 1e-6);
  EXPECT_EQ(graph.config["rope_theta"], 10000.0);
  EXPECT_EQ(graph.config["tie_word_embeddings"], false);
  EXPECT_EQ(graph.modules.size(), 2u + 2 * 32);
  // Llama-2-7B: 6,738,415,616 parameters.
  EXPECT_EQ(graph.num_parameters(), 6738415616);
  const auto& fields = graph.defaulted_fields;
  EXPECT_NE(std::find(fields.begin(), fields.end(), "hidden_size"), fields.end());
  EXPECT_NE(std::find(fields.begin(), fields.end(), "num_key_value_heads"), fields.end());
}

TEST(LlamaGraphTest, MistralAndQwen2DefaultsDifferFromLlamas) {
  ModelGraph mistral = build_model_graph({{"model_type", "mistral"}});
  EXPECT_EQ(mistral.config["num_key_value_heads"], 8);
  EXPECT_EQ(mistral.config["intermediate_size"], 14336);
  EXPECT_EQ(mistral.config["max_position_embeddings"], 131072);
  // An explicit null means "as many as the attention heads".
  ModelGraph mistral_mha =
      build_model_graph({{"model_type", "mistral"}, {"num_key_value_heads", nullptr}});
  EXPECT_EQ(mistral_mha.config["num_key_value_heads"], 32);
  ModelGraph qwen2 = build_model_graph({{"model_type", "qwen2"}});
  EXPECT_EQ(qwen2.config["vocab_size"], 151936);
  EXPECT_EQ(qwen2.config["intermediate_size"], 22016);
  EXPECT_EQ(qwen2.config["num_key_value_heads"], 32);
  EXPECT_EQ(qwen2.workload.max_target_positions, 32768);
}

TEST(LlamaGraphTest, ConfigErrors) {
  expect_config_error({{"model_type", "llama"}, {"hidden_size", 4100}},
                      {"hidden_size 4100 is not divisible by num_attention_heads 32"});
  expect_config_error({{"model_type", "llama"}, {"num_key_value_heads", 5}},
                      {"num_attention_heads 32 is not divisible by num_key_value_heads 5"});
  expect_config_error({{"model_type", "llama"}, {"hidden_size", "4096"}},
                      {"hidden_size must be an integer >= 1", "\"4096\""});
  expect_config_error({{"model_type", "llama"}, {"hidden_size", 4096.5}}, {"hidden_size"});
  expect_config_error({{"model_type", "llama"}, {"num_hidden_layers", 0}}, {"num_hidden_layers"});
  expect_config_error({{"model_type", "llama"}, {"vocab_size", -3}}, {"vocab_size", "-3"});
  expect_config_error({{"model_type", "llama"}, {"tie_word_embeddings", "yes"}},
                      {"tie_word_embeddings must be true or false"});
  // Values the forward would turn into NaN logits, or ignore, are refused by name.
  expect_config_error({{"model_type", "llama"}, {"rms_norm_eps", -1e-5}}, {"rms_norm_eps must be a positive number"});
  expect_config_error({{"model_type", "llama"}, {"rms_norm_eps", 0}}, {"rms_norm_eps must be a positive number"});
  expect_config_error({{"model_type", "llama"}, {"rope_theta", 0}}, {"rope_theta must be a positive number"});
  expect_config_error({{"model_type", "llama"}, {"rope_parameters", {{"rope_theta", -5}}}},
                      {"rope_theta must be a positive number"});
  expect_config_error({{"model_type", "llama"}, {"rope_scaling", "x"}}, {"rope_scaling must be an object", "\"x\""});
}

}  // namespace
}  // namespace shardplan
