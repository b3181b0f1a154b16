// A checkpoint against a model graph: every missing tensor and wrong shape is reported, with names
// and both shapes; the random checkpoint of every shipped tiny config matches its graph.
#include "executor/weights/checkpoint_check.h"

#include <algorithm>

#include <gtest/gtest.h>

#include "executor/weights/checkpoint_writer.h"
#include "models/graph/registry.h"
#include "tests/executor/weights_test_util.h"

namespace shardplan {
namespace {

using testing::TempDir;

Param* find_param(ModelGraph& graph, const std::string& name) {
  for (Module& m : graph.modules)
    for (Param& p : m.params)
      if (p.name == name) return &p;
  return nullptr;
}

TEST(CheckpointCheckTest, MatchingCheckpointPasses) {
  TempDir dir;
  const ModelGraph graph = testing::tiny_graph();
  write_random_checkpoint(graph, dir.str(), 1, DType::kFloat32);
  Checkpoint ckpt = Checkpoint::open(dir.str());
  EXPECT_TRUE(find_checkpoint_mismatches(ckpt, graph).empty());
  EXPECT_NO_THROW(check_checkpoint_matches(ckpt, graph));
}

TEST(CheckpointCheckTest, MissingTensorsAndWrongShapesAreAllReported) {
  TempDir dir;
  write_random_checkpoint(testing::tiny_graph(), dir.str(), 1, DType::kFloat32);
  Checkpoint ckpt = Checkpoint::open(dir.str());

  ModelGraph expected = testing::tiny_graph();
  find_param(expected, "model.layers.1.mlp.up_proj.weight")->shape = {48, 16};
  find_param(expected, "model.norm.weight")->shape = {32};
  expected.modules[1].params.push_back(testing::make_param("model.layers.0.self_attn.k_proj.weight", {4, 16}));

  const std::vector<std::string> problems = find_checkpoint_mismatches(ckpt, expected);
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_EQ(problems[0], "checkpoint '" + dir.str() +
                             "': tensor 'model.layers.0.self_attn.k_proj.weight' is missing (the config needs shape [4, 16])");
  EXPECT_EQ(problems[1], "checkpoint '" + dir.str() + "': tensor 'model.layers.1.mlp.up_proj.weight' has shape [32, 16] in " +
                             (dir / "model.safetensors") + ", the config gives [48, 16]");
  EXPECT_NE(problems[2].find("'model.norm.weight' has shape [16]"), std::string::npos) << problems[2];
  EXPECT_NE(problems[2].find("the config gives [32]"), std::string::npos) << problems[2];

  testing::expect_weights_error([&] { check_checkpoint_matches(ckpt, expected); }, WeightsError::Code::kInvalid,
                                {"does not match the llama config (3 problems)",
                                 "k_proj.weight' is missing", "[32, 16]", "[48, 16]", "the config gives [32]"});
}

TEST(CheckpointCheckTest, TiedLmHeadHasNoTensorOfItsOwn) {
  ModelGraph graph = testing::tiny_graph();
  graph.tied_lm_head_to = "model.embed_tokens.weight";
  graph.modules.back().params = {testing::make_param("model.norm.weight", {16}),
                                 testing::make_param("model.embed_tokens.weight", {64, 16})};
  std::vector<std::string> names;
  for (const Param* p : checkpoint_params(graph)) names.push_back(p->name);
  EXPECT_EQ(std::count(names.begin(), names.end(), "model.embed_tokens.weight"), 1);
  EXPECT_EQ(std::count(names.begin(), names.end(), "lm_head.weight"), 0);
  EXPECT_EQ(names.size(), 1u + 2 * 7 + 1);  // embed, 7 per layer, final norm (in the lm_head module)
  EXPECT_EQ(std::count(names.begin(), names.end(), "model.norm.weight"), 1);
}

// The real model layer end to end: every tiny config's random checkpoint holds exactly its graph.
TEST(CheckpointCheckTest, EveryTinyConfigRoundTrips) {
  for (const char* name : {"tiny-llama", "tiny-mistral", "tiny-qwen2", "tiny-mixtral", "tiny-qwen2-moe", "tiny-llava",
                           "tiny-whisper"}) {
    SCOPED_TRACE(name);
    TempDir dir;
    const ModelGraph graph = load_model_graph(std::string(SHARDPLAN_SOURCE_DIR) + "/models/configs/" + name + ".json");
    const WrittenCheckpoint written = write_random_checkpoint(graph, dir.str(), 7, DType::kBFloat16);
    Checkpoint ckpt = Checkpoint::open(dir.str());
    EXPECT_TRUE(find_checkpoint_mismatches(ckpt, graph).empty());
    EXPECT_EQ(static_cast<size_t>(written.tensors), ckpt.tensor_names().size());  // nothing extra either
    int64_t params = 0;
    for (const std::string& t : ckpt.tensor_names()) params += ckpt.info(t).numel();
    EXPECT_EQ(params, graph.num_parameters());
    // The written config.json builds the same graph.
    const ModelGraph reread = load_model_graph(dir / "config.json");
    EXPECT_EQ(reread.num_parameters(), graph.num_parameters());
    EXPECT_EQ(reread.config_dtype, DType::kBFloat16);
  }
}

}  // namespace
}  // namespace shardplan
