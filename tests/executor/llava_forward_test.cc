// Unit tests of LLaVA's image path (models/llava/llava_forward.h): the features' shape and the
// feature layer, the data-mode item slices, the merge of the features into the text embeddings
// and the deterministic inputs (workload.h). Every tower and projector mode sharded through the
// engine, against the unsharded run: multimodal_run_test.cc.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include <gtest/gtest.h>

#include "executor/runtime/engine.h"
#include "executor/runtime/rank_weights.h"
#include "executor/runtime/workload.h"
#include "executor/weights/safetensors.h"
#include "models/llava/llava_forward.h"
#include "tests/executor/runtime_test_util.h"

namespace shardplan {
namespace {

using testing::load_plan;
using testing::run_ranks;
using testing::SpecText;
using testing::write_spec;

constexpr int64_t kBatch = 3;            // requests; one image each
constexpr int64_t kImagesPerRequest = 1;

SpecText llava_spec(const std::string& mesh, const std::string& modules) {
  SpecText s;
  s.config = "tiny-llava.json";
  s.mesh = mesh;
  s.modules = modules;
  s.batch = kBatch;
  return s;
}

class LlavaImagePathTest : public ::testing::Test {
 protected:
  void SetUp() override { at::set_num_threads(1); }

  static at::Tensor pixels() {
    // tiny-llava: 3 channels, 56 px.
    return make_uniform_inputs({kBatch * kImagesPerRequest, 3, 56, 56}, 0);
  }

  // The tower and the projector of the unsharded plan on one rank.
  static const at::Tensor& unsharded() {
    static const at::Tensor features = [] {
      const std::unique_ptr<Plan> plan = load_plan(write_spec("llava_one", llava_spec("one: 1", "")));
      const Checkpoint checkpoint = Checkpoint::open(*plan->spec().checkpoint_path);
      const LlavaVision vision(plan->graph(), load_rank_shards(*plan, 0, checkpoint, at::kFloat, at::kCPU));
      return vision.project(vision.encode(pixels(), true, [](const std::string&, at::Tensor h) { return h; }), true);
    }();
    return features;
  }
};

TEST_F(LlavaImagePathTest, UnshardedFeaturesHaveTheImageShape) {
  const at::Tensor& f = unsharded();
  // 3 images x 16 patches (class token dropped) x text hidden 128.
  EXPECT_EQ(f.sizes(), at::IntArrayRef({kBatch, 16, 128}));
  EXPECT_TRUE(at::isfinite(f).all().item<bool>());
  // Different images give different features.
  EXPECT_GT((f[0] - f[1]).abs().max().item<double>(), 1e-3);
}

TEST_F(LlavaImagePathTest, FeatureLayerIsTheSecondToLastHiddenState) {
  const std::unique_ptr<Plan> plan = load_plan(write_spec("llava_one", llava_spec("one: 1", "")));
  const Checkpoint checkpoint = Checkpoint::open(*plan->spec().checkpoint_path);
  TensorShards shards = load_rank_shards(*plan, 0, checkpoint, at::kFloat, at::kCPU);
  const at::Tensor x = pixels();
  std::vector<std::string> children;
  std::vector<at::Tensor> states;
  const LlavaVision vision(plan->graph(), shards);
  const at::Tensor f = vision.encode(x, true, [&](const std::string& child, at::Tensor h) {
    children.push_back(child);
    states.push_back(h);
    return h;
  });
  // 3 layers: self_attn and mlp of each, in order.
  ASSERT_EQ(children.size(), 6u);
  EXPECT_EQ(children[0], "vision_tower.vision_model.encoder.layers.0.self_attn");
  EXPECT_EQ(children[5], "vision_tower.vision_model.encoder.layers.2.mlp");
  // vision_feature_layer -2: the output of layer 1 (child 3), class token dropped.
  EXPECT_TRUE(at::equal(f, states[3].narrow(1, 1, 16)));
  // The last layer's weights do not matter; layer 1's do.
  shards.at("vision_tower.vision_model.encoder.layers.2.mlp.fc2.weight").tensor.mul_(3);
  EXPECT_TRUE(at::equal(LlavaVision(plan->graph(), shards).encode(x, true, [](const std::string&, at::Tensor h) {
    return h;
  }), f));
  shards.at("vision_tower.vision_model.encoder.layers.1.mlp.fc2.weight").tensor.mul_(3);
  EXPECT_FALSE(at::allclose(LlavaVision(plan->graph(), shards).encode(x, true, [](const std::string&, at::Tensor h) {
    return h;
  }), f));
}

TEST(LlavaForwardTest, MergePutsFeaturesAtImageTokensInOrder) {
  // 2 requests, 2 image tokens and 3 text tokens each; image token 7, vocab 10.
  const at::Tensor ids = make_image_prompts(2, 2, 3, 10, 7, 0);
  ASSERT_EQ(ids.sizes(), at::IntArrayRef({2, 5}));
  EXPECT_TRUE(ids.narrow(1, 0, 2).eq(7).all().item<bool>());
  EXPECT_FALSE(ids.narrow(1, 2, 3).eq(7).any().item<bool>());
  const at::Tensor embeds = at::randn({2, 5, 4});
  const at::Tensor features = at::arange(16, at::kFloat).view({2, 2, 4});  // [items, tokens, hidden]
  const at::Tensor merged = llava_merge_image_features(embeds, ids, features, 7, true);
  EXPECT_TRUE(at::equal(merged.narrow(1, 0, 2), features));
  EXPECT_TRUE(at::equal(merged.narrow(1, 2, 3), embeds.narrow(1, 2, 3)));
  // Not group rank 0 of a partial embedding: zeros where the features go.
  const at::Tensor partial = llava_merge_image_features(embeds, ids, features, 7, false);
  EXPECT_EQ(partial.narrow(1, 0, 2).abs().sum().item<double>(), 0.0);
  EXPECT_TRUE(at::equal(partial.narrow(1, 2, 3), embeds.narrow(1, 2, 3)));
  // A count mismatch is an error.
  EXPECT_THROW(llava_merge_image_features(embeds, ids, features.narrow(0, 0, 1), 7, true), std::invalid_argument);
}

TEST(LlavaForwardTest, TextTokensNeverEqualTheImageToken) {
  // Seed 0, vocab 3: some of make_prompts' ids are 1 (the image token) and must become 2.
  const at::Tensor text = make_prompts(4, 16, 3, 0);
  ASSERT_TRUE(text.eq(1).any().item<bool>());
  const at::Tensor ids = make_image_prompts(4, 1, 16, 3, 1, 0);
  EXPECT_EQ(ids.eq(1).sum().item<int64_t>(), 4);
  EXPECT_TRUE(at::equal(ids.narrow(1, 1, 16), at::where(text.eq(1), at::full_like(text, 2), text)));
}

TEST(LlavaForwardTest, UniformInputsAreDeterministicAndExact) {
  const at::Tensor a = make_uniform_inputs({2, 3, 4}, 5);
  EXPECT_TRUE(at::equal(a, make_uniform_inputs({2, 3, 4}, 5)));
  EXPECT_FALSE(at::equal(a, make_uniform_inputs({2, 3, 4}, 6)));
  EXPECT_GE(a.min().item<float>(), -1.0f);
  EXPECT_LT(a.max().item<float>(), 1.0f);
  // Every value is a multiple of 2^-23 (24-bit uniform), as the Python reference reproduces.
  EXPECT_TRUE(at::equal((a * 8388608.0).round(), a * 8388608.0));
  // The first values, as scripts/reference/hf_reference.py's make_uniform_inputs computes them.
  const float* v = a.data_ptr<float>();
  EXPECT_EQ(v[0], -0.8530857563018799f);
  EXPECT_EQ(v[1], -0.3628373146057129f);
  EXPECT_EQ(v[2], -0.03562784194946289f);
  EXPECT_EQ(v[3], 0.22093141078948975f);
  // And its make_image_prompts(2, 2, 3, 10, 7, 0).
  const at::Tensor ids = make_image_prompts(2, 2, 3, 10, 7, 0);
  const std::vector<int64_t> expected = {7, 7, 5, 5, 0, 7, 7, 3, 8, 8};
  EXPECT_TRUE(at::equal(ids.flatten(), at::tensor(expected, at::TensorOptions().dtype(at::kLong))));
}

}  // namespace
}  // namespace shardplan
