// Whisper: the audio encoder as one module, decoder self/cross attention and virtual MLP paths,
// the tied proj_out, counts, defaults, errors.
#include "models/whisper/whisper_graph.h"

#include <gtest/gtest.h>

#include "tests/models/graph_test_util.h"

namespace shardplan {
namespace {

using testing::expect_config_error;
using testing::find_param;
using testing::load_config;
using testing::module_at;
using testing::params_text;

TEST(WhisperGraphTest, LargeV3ParameterCount) {
  EXPECT_EQ(load_config("whisper-large-v3.json").num_parameters(), 1543490560);
}

TEST(WhisperGraphTest, DefaultsAreWhisperTiny) {
  ModelGraph graph = build_model_graph({{"model_type", "whisper"}});
  EXPECT_EQ(graph.config["vocab_size"], 51865);
  EXPECT_EQ(graph.config["num_mel_bins"], 80);
  EXPECT_EQ(graph.config["d_model"], 384);
  EXPECT_EQ(graph.config["encoder_layers"], 4);
  EXPECT_EQ(graph.config["decoder_layers"], 4);
  EXPECT_EQ(graph.config["encoder_attention_heads"], 6);
  EXPECT_EQ(graph.config["decoder_attention_heads"], 6);
  EXPECT_EQ(graph.config["encoder_ffn_dim"], 1536);
  EXPECT_EQ(graph.config["decoder_ffn_dim"], 1536);
  EXPECT_EQ(graph.config["max_source_positions"], 1500);
  EXPECT_EQ(graph.config["max_target_positions"], 448);
  EXPECT_EQ(graph.config["tie_word_embeddings"], true);
  EXPECT_EQ(graph.num_parameters(), 37760640);  // openai/whisper-tiny
}

TEST(WhisperGraphTest, ModuleOrder) {
  ModelGraph graph = load_config("tiny-whisper.json");  // 2 decoder layers
  EXPECT_EQ(testing::module_paths(graph.modules),
            (std::vector<std::string>{
                "model.encoder",
                "model.decoder.embed_tokens",
                "model.decoder.layers.0.self_attn",
                "model.decoder.layers.0.encoder_attn",
                "model.decoder.layers.0.mlp",
                "model.decoder.layers.1.self_attn",
                "model.decoder.layers.1.encoder_attn",
                "model.decoder.layers.1.mlp",
                "proj_out",
            }));
  std::vector<ModuleKind> kinds;
  for (const Module& module : graph.modules) kinds.push_back(module.kind);
  EXPECT_EQ(kinds, (std::vector<ModuleKind>{
                       ModuleKind::kEncoder, ModuleKind::kEmbedding, ModuleKind::kAttention,
                       ModuleKind::kCrossAttention, ModuleKind::kMlp, ModuleKind::kAttention,
                       ModuleKind::kCrossAttention, ModuleKind::kMlp, ModuleKind::kLmHead}));
  EXPECT_EQ(graph.modules[2].layer, 0);
  EXPECT_EQ(graph.modules[7].layer, 1);
  EXPECT_EQ(graph.modules[0].layer, -1);
}

TEST(WhisperGraphTest, EncoderFirstLayerTensors) {
  ModelGraph graph = load_config("whisper-large-v3.json");
  const Module& encoder = module_at(graph, "model.encoder");
  EXPECT_EQ(encoder.kind, ModuleKind::kEncoder);
  EXPECT_EQ(encoder.stream, Stream::kAudio);
  EXPECT_EQ(encoder.dims.hidden, 1280);
  EXPECT_EQ(encoder.dims.heads, 20);
  EXPECT_EQ(encoder.dims.head_dim, 64);
  EXPECT_EQ(encoder.dims.intermediate, 5120);
  EXPECT_EQ(encoder.dims.layers, 32);
  const std::vector<std::string> lines = params_text(encoder);
  ASSERT_EQ(lines.size(), 5u + 32 * 15 + 2);
  const std::string l = "model.encoder.layers.0.";
  EXPECT_EQ(std::vector<std::string>(lines.begin(), lines.begin() + 20),
            (std::vector<std::string>{
                "model.encoder.conv1.weight [1280, 128, 3] none",
                "model.encoder.conv1.bias [1280] none",
                "model.encoder.conv2.weight [1280, 1280, 3] none",
                "model.encoder.conv2.bias [1280] none",
                "model.encoder.embed_positions.weight [1500, 1280] none",
                l + "self_attn_layer_norm.weight [1280] none",
                l + "self_attn_layer_norm.bias [1280] none",
                l + "self_attn.q_proj.weight [1280, 1280] dim0/20",
                l + "self_attn.q_proj.bias [1280] dim0/20",
                l + "self_attn.k_proj.weight [1280, 1280] dim0/20",  // k_proj has no bias
                l + "self_attn.v_proj.weight [1280, 1280] dim0/20",
                l + "self_attn.v_proj.bias [1280] dim0/20",
                l + "self_attn.out_proj.weight [1280, 1280] dim1/20",
                l + "self_attn.out_proj.bias [1280] none",
                l + "final_layer_norm.weight [1280] none",
                l + "final_layer_norm.bias [1280] none",
                l + "fc1.weight [5120, 1280] dim0/5120",
                l + "fc1.bias [5120] dim0/5120",
                l + "fc2.weight [1280, 5120] dim1/5120",
                l + "fc2.bias [1280] none",
            }));
  EXPECT_EQ(lines[lines.size() - 2], "model.encoder.layer_norm.weight [1280] none");
  EXPECT_EQ(lines.back(), "model.encoder.layer_norm.bias [1280] none");

  ASSERT_EQ(encoder.children.size(), 64u);
  EXPECT_EQ(encoder.children[0].path, "model.encoder.layers.0.self_attn");
  EXPECT_EQ(encoder.children[0].kind, ModuleKind::kAttention);
  EXPECT_EQ(encoder.children[0].params.size(), 9u);
  EXPECT_EQ(encoder.children[1].path, "model.encoder.layers.0.mlp");  // virtual path
  EXPECT_EQ(encoder.children[1].kind, ModuleKind::kMlp);
  EXPECT_EQ(params_text(encoder.children[1]),
            std::vector<std::string>(lines.begin() + 14, lines.begin() + 20));
}

TEST(WhisperGraphTest, DecoderFirstLayerTensors) {
  ModelGraph graph = load_config("whisper-large-v3.json");
  EXPECT_EQ(params_text(module_at(graph, "model.decoder.embed_tokens")),
            (std::vector<std::string>{
                "model.decoder.embed_tokens.weight [51866, 1280] dim0/51866",
                "model.decoder.embed_positions.weight [448, 1280] none",
            }));
  const std::string l = "model.decoder.layers.0.";
  EXPECT_EQ(params_text(module_at(graph, l + "self_attn")),
            (std::vector<std::string>{
                l + "self_attn_layer_norm.weight [1280] none",
                l + "self_attn_layer_norm.bias [1280] none",
                l + "self_attn.q_proj.weight [1280, 1280] dim0/20",
                l + "self_attn.q_proj.bias [1280] dim0/20",
                l + "self_attn.k_proj.weight [1280, 1280] dim0/20",
                l + "self_attn.v_proj.weight [1280, 1280] dim0/20",
                l + "self_attn.v_proj.bias [1280] dim0/20",
                l + "self_attn.out_proj.weight [1280, 1280] dim1/20",
                l + "self_attn.out_proj.bias [1280] none",
            }));
  const Module& cross = module_at(graph, l + "encoder_attn");
  EXPECT_EQ(cross.kind, ModuleKind::kCrossAttention);
  EXPECT_EQ(cross.stream, Stream::kText);
  EXPECT_EQ(cross.kv_stream, Stream::kAudio);
  EXPECT_EQ(cross.dims.heads, 20);
  EXPECT_EQ(cross.dims.kv_heads, 20);
  EXPECT_EQ(cross.dims.kv_source_hidden, 1280);
  EXPECT_EQ(params_text(cross),
            (std::vector<std::string>{
                l + "encoder_attn_layer_norm.weight [1280] none",
                l + "encoder_attn_layer_norm.bias [1280] none",
                l + "encoder_attn.q_proj.weight [1280, 1280] dim0/20",
                l + "encoder_attn.q_proj.bias [1280] dim0/20",
                l + "encoder_attn.k_proj.weight [1280, 1280] dim0/20",
                l + "encoder_attn.v_proj.weight [1280, 1280] dim0/20",
                l + "encoder_attn.v_proj.bias [1280] dim0/20",
                l + "encoder_attn.out_proj.weight [1280, 1280] dim1/20",
                l + "encoder_attn.out_proj.bias [1280] none",
            }));
  EXPECT_EQ(module_at(graph, l + "self_attn").kv_stream, std::nullopt);
  EXPECT_EQ(params_text(module_at(graph, l + "mlp")),
            (std::vector<std::string>{
                l + "final_layer_norm.weight [1280] none",
                l + "final_layer_norm.bias [1280] none",
                l + "fc1.weight [5120, 1280] dim0/5120",
                l + "fc1.bias [5120] dim0/5120",
                l + "fc2.weight [1280, 5120] dim1/5120",
                l + "fc2.bias [1280] none",
            }));
}

TEST(WhisperGraphTest, ProjOutIsTiedByDefault) {
  // whisper-large-v3's config.json has no tie_word_embeddings: WhisperConfig's default is true.
  ModelGraph graph = load_config("whisper-large-v3.json");
  const Module& proj_out = module_at(graph, "proj_out");
  EXPECT_EQ(proj_out.kind, ModuleKind::kLmHead);
  EXPECT_EQ(params_text(proj_out),
            (std::vector<std::string>{"model.decoder.layer_norm.weight [1280] none",
                                      "model.decoder.layer_norm.bias [1280] none"}));
  EXPECT_EQ(find_param(proj_out, "proj_out.weight"), nullptr);
  EXPECT_EQ(graph.tied_lm_head_to, "model.decoder.embed_tokens.weight");
  EXPECT_EQ(proj_out.dims.vocab, 51866);
}

TEST(WhisperGraphTest, UntiedProjOut) {
  nlohmann::json config = load_config("whisper-large-v3.json").config;
  config["tie_word_embeddings"] = false;
  ModelGraph graph = build_model_graph(config);
  EXPECT_EQ(params_text(module_at(graph, "proj_out")).back(),
            "proj_out.weight [51866, 1280] dim0/51866");
  EXPECT_FALSE(graph.tied_lm_head_to.has_value());
  EXPECT_EQ(graph.num_parameters(), 1543490560 + 51866 * 1280);
}

TEST(WhisperGraphTest, WorkloadShape) {
  ModelGraph graph = load_config("whisper-large-v3.json");
  EXPECT_EQ(graph.workload.encoder_tokens_per_clip, 1500);
  EXPECT_EQ(graph.workload.max_target_positions, 448);
  EXPECT_EQ(graph.workload.tokens_per_image, 0);
  EXPECT_EQ(graph.hidden, 1280);
  EXPECT_EQ(graph.vocab, 51866);
}

TEST(WhisperGraphTest, AliasesOfTransformersAttributeMap) {
  // num_hidden_layers stands for encoder_layers, hidden_size for d_model.
  ModelGraph graph =
      build_model_graph({{"model_type", "whisper"}, {"num_hidden_layers", 3},
                         {"hidden_size", 192}});
  EXPECT_EQ(module_at(graph, "model.encoder").dims.layers, 3);
  EXPECT_EQ(graph.hidden, 192);
  expect_config_error({{"model_type", "whisper"}, {"num_hidden_layers", 3}, {"encoder_layers", 4}},
                      {"num_hidden_layers 3 contradicts encoder_layers 4"});
}

TEST(WhisperGraphTest, ConfigErrors) {
  expect_config_error({{"model_type", "whisper"}, {"d_model", 100}},
                      {"d_model 100 is not divisible by encoder_attention_heads 6"});
  expect_config_error({{"model_type", "whisper"}, {"decoder_attention_heads", 7}},
                      {"d_model 384 is not divisible by decoder_attention_heads 7"});
  expect_config_error({{"model_type", "whisper"}, {"max_source_positions", 0}},
                      {"max_source_positions"});
}

}  // namespace
}  // namespace shardplan
