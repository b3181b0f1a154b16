// LLaVA: transformers' defaults for the fields llava-1.5 leaves out, the vision tower as one
// encoder module, the projector, the language model under "language_model.", workload shapes.
#include "models/llava/llava_graph.h"

#include <algorithm>
#include <set>

#include <gtest/gtest.h>

#include "tests/models/graph_test_util.h"

namespace shardplan {
namespace {

using testing::expect_config_error;
using testing::load_config;
using testing::module_at;
using testing::params_text;

TEST(LlavaGraphTest, Llava15_7BParameterCount) {
  // CLIP ViT-L/14-336 tower 303,507,456 + projector 20,979,712 + Vicuna-7B with 32064 tokens
  // 6,738,939,904.
  EXPECT_EQ(load_config("llava-1.5-7b.json").num_parameters(), 7063427072);
}

TEST(LlavaGraphTest, TextConfigTakesLlamaDefaults) {
  ModelGraph graph = load_config("llava-1.5-7b.json");
  const nlohmann::json& text = graph.config["text_config"];
  EXPECT_EQ(text["hidden_size"], 4096);
  EXPECT_EQ(text["num_hidden_layers"], 32);
  EXPECT_EQ(text["intermediate_size"], 11008);
  EXPECT_EQ(text["num_attention_heads"], 32);
  EXPECT_EQ(text["num_key_value_heads"], 32);
  EXPECT_EQ(text["vocab_size"], 32064);               // given in text_config
  EXPECT_EQ(text["max_position_embeddings"], 4096);   // given
  EXPECT_EQ(graph.hidden, 4096);
  EXPECT_EQ(graph.vocab, 32064);
  const auto& fields = graph.defaulted_fields;
  EXPECT_NE(std::find(fields.begin(), fields.end(), "text_config.hidden_size"), fields.end());
  EXPECT_EQ(std::find(fields.begin(), fields.end(), "text_config.vocab_size"), fields.end());
  EXPECT_EQ(std::find(fields.begin(), fields.end(), "vision_config.hidden_size"), fields.end());
  EXPECT_NE(std::find(fields.begin(), fields.end(), "vision_config.num_channels"), fields.end());
  // 32 text layers, as many attention + mlp modules.
  int attention = 0;
  for (const Module& module : graph.modules) attention += module.kind == ModuleKind::kAttention;
  EXPECT_EQ(attention, 32);
  EXPECT_EQ(module_at(graph, "language_model.model.layers.31.mlp").dims.intermediate, 11008);
}

TEST(LlavaGraphTest, ModuleOrder) {
  ModelGraph graph = load_config("llava-1.5-7b.json");
  std::vector<std::string> expected = {"vision_tower", "multi_modal_projector",
                                       "language_model.model.embed_tokens"};
  for (int layer = 0; layer < 32; ++layer) {
    expected.push_back("language_model.model.layers." + std::to_string(layer) + ".self_attn");
    expected.push_back("language_model.model.layers." + std::to_string(layer) + ".mlp");
  }
  expected.push_back("language_model.lm_head");
  EXPECT_EQ(testing::module_paths(graph.modules), expected);
}

TEST(LlavaGraphTest, VisionTowerIsOneEncoderWithEveryTowerTensor) {
  ModelGraph graph = load_config("llava-1.5-7b.json");
  const Module& tower = module_at(graph, "vision_tower");
  EXPECT_EQ(tower.kind, ModuleKind::kEncoder);
  EXPECT_EQ(tower.stream, Stream::kImage);
  EXPECT_EQ(tower.dims.hidden, 1024);
  EXPECT_EQ(tower.dims.heads, 16);
  EXPECT_EQ(tower.dims.kv_heads, 16);
  EXPECT_EQ(tower.dims.head_dim, 64);
  EXPECT_EQ(tower.dims.intermediate, 4096);
  EXPECT_EQ(tower.dims.layers, 24);
  const std::vector<std::string> lines = params_text(tower);
  ASSERT_EQ(lines.size(), 3u + 2 + 24 * 16 + 2);
  const std::string v = "vision_tower.vision_model.";
  EXPECT_EQ(std::vector<std::string>(lines.begin(), lines.begin() + 5),
            (std::vector<std::string>{
                v + "embeddings.class_embedding [1024] none",
                v + "embeddings.patch_embedding.weight [1024, 3, 14, 14] none",
                v + "embeddings.position_embedding.weight [577, 1024] none",
                v + "pre_layrnorm.weight [1024] none",
                v + "pre_layrnorm.bias [1024] none",
            }));
  const std::string l = v + "encoder.layers.0.";
  EXPECT_EQ(std::vector<std::string>(lines.begin() + 5, lines.begin() + 21),
            (std::vector<std::string>{
                l + "layer_norm1.weight [1024] none",
                l + "layer_norm1.bias [1024] none",
                l + "self_attn.q_proj.weight [1024, 1024] dim0/16",
                l + "self_attn.q_proj.bias [1024] dim0/16",
                l + "self_attn.k_proj.weight [1024, 1024] dim0/16",
                l + "self_attn.k_proj.bias [1024] dim0/16",
                l + "self_attn.v_proj.weight [1024, 1024] dim0/16",
                l + "self_attn.v_proj.bias [1024] dim0/16",
                l + "self_attn.out_proj.weight [1024, 1024] dim1/16",
                l + "self_attn.out_proj.bias [1024] none",
                l + "layer_norm2.weight [1024] none",
                l + "layer_norm2.bias [1024] none",
                l + "mlp.fc1.weight [4096, 1024] dim0/4096",
                l + "mlp.fc1.bias [4096] dim0/4096",
                l + "mlp.fc2.weight [1024, 4096] dim1/4096",
                l + "mlp.fc2.bias [1024] none",
            }));
  // All 24 layers are in the checkpoint, though vision_feature_layer -2 leaves the last unused.
  EXPECT_EQ(lines[lines.size() - 3],
            v + "encoder.layers.23.mlp.fc2.bias [1024] none");
  EXPECT_EQ(lines[lines.size() - 2], v + "post_layernorm.weight [1024] none");
  EXPECT_EQ(lines.back(), v + "post_layernorm.bias [1024] none");
}

TEST(LlavaGraphTest, VisionTowerChildrenListTheSameTensors) {
  ModelGraph graph = load_config("llava-1.5-7b.json");
  const Module& tower = module_at(graph, "vision_tower");
  ASSERT_EQ(tower.children.size(), 48u);
  const Module& attention = tower.children[0];
  const Module& mlp = tower.children[1];
  EXPECT_EQ(attention.path, "vision_tower.vision_model.encoder.layers.0.self_attn");
  EXPECT_EQ(attention.kind, ModuleKind::kAttention);
  EXPECT_EQ(attention.stream, Stream::kImage);
  EXPECT_EQ(attention.dims.heads, 16);
  EXPECT_EQ(attention.params.size(), 10u);
  EXPECT_EQ(mlp.path, "vision_tower.vision_model.encoder.layers.0.mlp");
  EXPECT_EQ(mlp.kind, ModuleKind::kMlp);
  EXPECT_EQ(mlp.dims.intermediate, 4096);
  EXPECT_EQ(mlp.params.size(), 6u);
  EXPECT_EQ(tower.children[47].path, "vision_tower.vision_model.encoder.layers.23.mlp");
  std::set<std::string> tower_names;
  for (const Param& param : tower.params) tower_names.insert(param.name);
  size_t child_params = 0;
  for (const Module& child : tower.children) {
    for (const Param& param : child.params) {
      EXPECT_EQ(tower_names.count(param.name), 1u) << param.name;
      ++child_params;
    }
  }
  EXPECT_EQ(child_params, 24u * 16);
}

TEST(LlavaGraphTest, ProjectorAndLanguageModel) {
  ModelGraph graph = load_config("llava-1.5-7b.json");
  const Module& projector = module_at(graph, "multi_modal_projector");
  EXPECT_EQ(projector.kind, ModuleKind::kProjector);
  EXPECT_EQ(projector.stream, Stream::kImage);
  EXPECT_TRUE(projector.merges_into_text);
  EXPECT_EQ(projector.dims.hidden, 1024);
  EXPECT_EQ(projector.dims.intermediate, 4096);
  EXPECT_EQ(params_text(projector),
            (std::vector<std::string>{
                "multi_modal_projector.linear_1.weight [4096, 1024] dim0/4096",
                "multi_modal_projector.linear_1.bias [4096] dim0/4096",
                "multi_modal_projector.linear_2.weight [4096, 4096] dim1/4096",
                "multi_modal_projector.linear_2.bias [4096] none",
            }));
  EXPECT_EQ(params_text(module_at(graph, "language_model.model.embed_tokens")),
            (std::vector<std::string>{
                "language_model.model.embed_tokens.weight [32064, 4096] dim0/32064"}));
  EXPECT_EQ(params_text(module_at(graph, "language_model.model.layers.0.self_attn")),
            (std::vector<std::string>{
                "language_model.model.layers.0.input_layernorm.weight [4096] none",
                "language_model.model.layers.0.self_attn.q_proj.weight [4096, 4096] dim0/32",
                "language_model.model.layers.0.self_attn.k_proj.weight [4096, 4096] dim0/32 "
                "replicable",
                "language_model.model.layers.0.self_attn.v_proj.weight [4096, 4096] dim0/32 "
                "replicable",
                "language_model.model.layers.0.self_attn.o_proj.weight [4096, 4096] dim1/32",
            }));
  EXPECT_EQ(params_text(module_at(graph, "language_model.model.layers.0.mlp")),
            (std::vector<std::string>{
                "language_model.model.layers.0.post_attention_layernorm.weight [4096] none",
                "language_model.model.layers.0.mlp.gate_proj.weight [11008, 4096] dim0/11008",
                "language_model.model.layers.0.mlp.up_proj.weight [11008, 4096] dim0/11008",
                "language_model.model.layers.0.mlp.down_proj.weight [4096, 11008] dim1/11008",
            }));
  const Module& lm_head = module_at(graph, "language_model.lm_head");
  EXPECT_EQ(lm_head.kind, ModuleKind::kLmHead);
  EXPECT_EQ(params_text(lm_head),
            (std::vector<std::string>{
                "language_model.model.norm.weight [4096] none",
                "language_model.lm_head.weight [32064, 4096] dim0/32064"}));
  EXPECT_FALSE(graph.tied_lm_head_to.has_value());
  for (size_t i = 2; i < graph.modules.size(); ++i) {
    EXPECT_EQ(graph.modules[i].stream, Stream::kText) << graph.modules[i].path;
  }
}

TEST(LlavaGraphTest, WorkloadShape) {
  ModelGraph graph = load_config("llava-1.5-7b.json");
  EXPECT_EQ(graph.workload.tokens_per_image, 576);         // (336 / 14)^2, class token dropped
  EXPECT_EQ(graph.workload.encoder_tokens_per_item, 577);  // with the class token
  EXPECT_EQ(graph.workload.max_target_positions, 4096);
  nlohmann::json full = graph.config;
  full["vision_feature_select_strategy"] = "full";
  EXPECT_EQ(build_model_graph(full).workload.tokens_per_image, 577);
}

TEST(LlavaGraphTest, MissingSubConfigsTakeLlavaConfigDefaults) {
  ModelGraph graph = build_model_graph({{"model_type", "llava"}});
  const Module& tower = module_at(graph, "vision_tower");
  EXPECT_EQ(tower.dims.hidden, 1024);  // LlavaConfig's CLIP ViT-L/14-336, not CLIPVisionConfig's
  EXPECT_EQ(tower.dims.layers, 24);
  EXPECT_EQ(tower.dims.heads, 16);
  EXPECT_EQ(tower.dims.intermediate, 4096);
  EXPECT_EQ(graph.workload.tokens_per_image, 576);
  EXPECT_EQ(graph.vocab, 32000);
  EXPECT_EQ(graph.hidden, 4096);
  EXPECT_EQ(graph.config["vision_feature_layer"], -2);
  EXPECT_EQ(graph.config["multimodal_projector_bias"], true);
  const auto& fields = graph.defaulted_fields;
  EXPECT_NE(std::find(fields.begin(), fields.end(), "vision_config"), fields.end());
  EXPECT_NE(std::find(fields.begin(), fields.end(), "text_config"), fields.end());
  // Llama-2-7B (6,738,415,616) + tower 303,507,456 + projector 20,979,712.
  EXPECT_EQ(graph.num_parameters(), 6738415616 + 303507456 + 20979712);
}

TEST(LlavaGraphTest, GivenVisionConfigTakesClipVisionConfigDefaults) {
  ModelGraph graph = build_model_graph(
      {{"model_type", "llava"}, {"vision_config", {{"model_type", "clip_vision_model"}}}});
  const Module& tower = module_at(graph, "vision_tower");
  EXPECT_EQ(tower.dims.hidden, 768);
  EXPECT_EQ(tower.dims.layers, 12);
  EXPECT_EQ(tower.dims.heads, 12);
  EXPECT_EQ(tower.dims.intermediate, 3072);
  EXPECT_EQ(graph.workload.tokens_per_image, 49);  // (224 / 32)^2
}

TEST(LlavaGraphTest, FeatureLayerListWidensTheProjector) {
  nlohmann::json config = load_config("tiny-llava.json").config;
  config["vision_feature_layer"] = {-2, -3};
  ModelGraph graph = build_model_graph(config);
  EXPECT_EQ(params_text(module_at(graph, "multi_modal_projector"))[0],
            "multi_modal_projector.linear_1.weight [128, 128] dim0/128");  // 2 x 64 -> 128
}

TEST(LlavaGraphTest, NoProjectorBias) {
  nlohmann::json config = load_config("tiny-llava.json").config;
  config["multimodal_projector_bias"] = false;
  EXPECT_EQ(params_text(module_at(build_model_graph(config), "multi_modal_projector")),
            (std::vector<std::string>{
                "multi_modal_projector.linear_1.weight [128, 64] dim0/128",
                "multi_modal_projector.linear_2.weight [128, 128] dim1/128",
            }));
}

TEST(LlavaGraphTest, TiedViaTextConfig) {
  nlohmann::json config = load_config("tiny-llava.json").config;
  config["text_config"]["tie_word_embeddings"] = true;
  ModelGraph graph = build_model_graph(config);
  EXPECT_EQ(graph.tied_lm_head_to, "language_model.model.embed_tokens.weight");
  EXPECT_EQ(params_text(module_at(graph, "language_model.lm_head")),
            (std::vector<std::string>{"language_model.model.norm.weight [128] none"}));
}

TEST(LlavaGraphTest, TinyLlava) {
  ModelGraph graph = load_config("tiny-llava.json");
  EXPECT_EQ(graph.workload.tokens_per_image, 16);  // (56 / 14)^2
  EXPECT_EQ(graph.workload.encoder_tokens_per_item, 17);
  const Module& tower = module_at(graph, "vision_tower");
  EXPECT_EQ(tower.dims.layers, 3);
  EXPECT_EQ(tower.children.size(), 6u);
  EXPECT_EQ(params_text(tower)[2],
            "vision_tower.vision_model.embeddings.position_embedding.weight [17, 64] none");
}

TEST(LlavaGraphTest, ConfigErrors) {
  expect_config_error({{"model_type", "llava"}, {"vision_feature_select_strategy", "cls"}},
                      {"vision_feature_select_strategy", "'cls'"});
  expect_config_error(
      {{"model_type", "llava"}, {"vision_config", {{"model_type", "siglip_vision_model"}}}},
      {"vision_config.model_type", "siglip_vision_model", "clip_vision_model"});
  expect_config_error({{"model_type", "llava"}, {"text_config", {{"model_type", "gemma"}}}},
                      {"text_config.model_type", "gemma", "llama"});
  expect_config_error({{"model_type", "llava"},
                       {"vision_config", {{"image_size", 100}, {"patch_size", 14}}}},
                      {"vision_config.image_size 100 is not divisible by "
                       "vision_config.patch_size 14"});
  expect_config_error({{"model_type", "llava"},
                       {"vision_config", {{"hidden_size", 100}, {"num_attention_heads", 16}}}},
                      {"vision_config.hidden_size 100", "vision_config.num_attention_heads 16"});
  expect_config_error({{"model_type", "llava"}, {"vision_feature_layer", 25}},
                      {"vision_feature_layer", "[-25, 24]", "25"});
  expect_config_error({{"model_type", "llava"}, {"text_config", {{"hidden_size", 4100}}}},
                      {"text_config.hidden_size 4100", "text_config.num_attention_heads 32"});
}

}  // namespace
}  // namespace shardplan
