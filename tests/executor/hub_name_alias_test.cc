// llava's classic and newer Hub layouts: the name table, and lookups through a checkpoint that
// takes the family's aliases.
#include "models/llava/llava_graph.h"

#include <gtest/gtest.h>

#include "executor/weights/checkpoint_check.h"
#include "executor/weights/safetensors.h"
#include "tests/executor/weights_test_util.h"

namespace shardplan {
namespace {

using testing::TempDir;

TEST(HubNameAliasTest, ClassicAndNewerLlavaNamesMapBothWays) {
  const std::pair<const char*, const char*> pairs[] = {
      {"language_model.model.layers.0.mlp.up_proj.weight", "model.language_model.layers.0.mlp.up_proj.weight"},
      {"language_model.model.embed_tokens.weight", "model.language_model.embed_tokens.weight"},
      {"language_model.lm_head.weight", "lm_head.weight"},
      {"vision_tower.vision_model.encoder.layers.3.mlp.fc1.weight",
       "model.vision_tower.vision_model.encoder.layers.3.mlp.fc1.weight"},
      {"multi_modal_projector.linear_1.bias", "model.multi_modal_projector.linear_1.bias"},
  };
  for (const auto& [classic, newer] : pairs) {
    EXPECT_EQ(llava_alternate_hub_name(classic), std::optional<std::string>(newer)) << classic;
    EXPECT_EQ(llava_alternate_hub_name(newer), std::optional<std::string>(classic)) << newer;
  }
  EXPECT_EQ(llava_alternate_hub_name("model.layers.0.mlp.up_proj.weight"), std::nullopt);  // llama
  EXPECT_EQ(llava_alternate_hub_name("model.decoder.layers.0.fc1.weight"), std::nullopt);  // whisper
  EXPECT_EQ(llava_alternate_hub_name("language_model.norm.weight"), std::nullopt);
}

// A newer-layout llava file holding two tensors.
void write_newer_layout(const TempDir& dir) {
  testing::write_safetensors(dir / "model.safetensors",
                             R"({"lm_head.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
                             R"("model.vision_tower.vision_model.post_layernorm.weight":)"
                             R"({"dtype":"F32","shape":[2],"data_offsets":[16,24]}})",
                             testing::float_bytes({1, 2, 3, 4, 5, 6}));
}

TEST(HubNameAliasTest, ClassicNamesFindANewerLayoutCheckpoint) {
  TempDir dir;
  write_newer_layout(dir);
  Checkpoint ckpt = Checkpoint::open(dir.str());
  // Without the family's aliases the classic name is not there.
  EXPECT_FALSE(ckpt.contains("language_model.lm_head.weight"));
  ckpt.set_alternate_names(llava_family().alternate_hub_name);
  EXPECT_EQ(ckpt.resolve("language_model.lm_head.weight"), std::optional<std::string>("lm_head.weight"));
  EXPECT_TRUE(ckpt.contains("vision_tower.vision_model.post_layernorm.weight"));
  EXPECT_EQ(ckpt.info("vision_tower.vision_model.post_layernorm.weight").name,
            "model.vision_tower.vision_model.post_layernorm.weight");
  std::vector<float> row(2);
  ckpt.read_slice("language_model.lm_head.weight", {1, 0}, {1, 2}, row.data());
  EXPECT_EQ(row, (std::vector<float>{3, 4}));
  EXPECT_FALSE(ckpt.contains("language_model.model.norm.weight"));
  testing::expect_weights_error([&] { ckpt.info("language_model.model.norm.weight"); }, WeightsError::Code::kInvalid,
                                {"no tensor 'language_model.model.norm.weight'", "nor 'model.language_model.norm.weight'"});

  // The graph check goes through the same lookup.
  ModelGraph graph;
  graph.model_type = llava_family().name;
  Module head = testing::make_module("language_model.lm_head", ModuleKind::kLmHead);
  head.params = {testing::make_param("language_model.lm_head.weight", {2, 2})};
  graph.modules.push_back(head);
  EXPECT_TRUE(find_checkpoint_mismatches(ckpt, graph).empty());
}

}  // namespace
}  // namespace shardplan
