// The runtime on CUDA (label "gpu"; skipped without a GPU): the differential tests of
// sharded_run_test.cc with every rank on cuda:0 (threads over the in-process communicator), in
// float32, bfloat16 and float16, and the forward against transformers' recorded logits.
#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "executor/runtime/engine.h"
#include "executor/runtime/rank_weights.h"
#include "executor/runtime/workload.h"
#include "executor/weights/safetensors.h"
#include "tests/executor/runtime_test_util.h"

namespace shardplan {
namespace {

using testing::load_plan;
using testing::run_threaded;
using testing::SpecText;
using testing::write_spec;

const at::Device kCuda(at::kCUDA, 0);

class GpuRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA";
  }

  static void expect_matches_unsharded(const std::string& name, const SpecText& spec) {
    const RunReport r = run_threaded(*load_plan(write_spec(name, spec)), true, kCuda).report;
    ASSERT_TRUE(r.verify.has_value());
    EXPECT_EQ(r.device, "cuda");
    EXPECT_TRUE(r.verify->passed) << name << ": max |diff| " << r.verify->max_abs_diff << " > " << r.verify->tolerance;
    if (spec.dtype != "float32") return;
    EXPECT_TRUE(r.verify->tokens_identical) << name;
    // The same tokens as the CPU's unsharded run.
    SpecText one = spec;
    one.mesh = "one: 1";
    one.batch_axes.clear();
    one.modules.clear();
    const RunReport cpu = run_threaded(*load_plan(write_spec(name + "_cpu", one)), false, at::kCPU).report;
    EXPECT_EQ(r.generated, cpu.generated) << name;
  }
};

TEST_F(GpuRunTest, TensorOverTwo) { expect_matches_unsharded("gpu_tp2", SpecText{}); }

TEST_F(GpuRunTest, TensorOverFour) {
  SpecText s;
  s.mesh = "tp: 4";
  expect_matches_unsharded("gpu_tp4", s);
}

TEST_F(GpuRunTest, DataTwoByTensorTwo) {
  SpecText s;
  s.mesh = "dp: 2;tp: 2";
  s.batch_axes = "[dp]";
  expect_matches_unsharded("gpu_dp2tp2", s);
}

TEST_F(GpuRunTest, AttentionDataMlpTensor) {
  SpecText s;
  s.modules =
      "  - kind: [embedding, mlp, lm_head]\n    mode: tensor\n    axes: [tp]\n"
      "  - kind: attention\n    mode: data\n    axes: [tp]\n";
  expect_matches_unsharded("gpu_attn_dp", s);
}

TEST_F(GpuRunTest, HalfPrecisions) {
  for (const char* dtype : {"bfloat16", "float16"}) {
    SpecText s;
    s.dtype = dtype;
    expect_matches_unsharded(std::string("gpu_tp2_") + dtype, s);
  }
}

TEST_F(GpuRunTest, ForwardMatchesTransformers) {
  nlohmann::json all;
  std::ifstream(std::string(SHARDPLAN_SOURCE_DIR) + "/tests/executor/data/hf_forward_reference.json") >> all;
  for (const char* model : {"tiny-llama", "tiny-mistral", "tiny-qwen2"}) {
    const nlohmann::json& ref = all["models"][model];
    SpecText s;
    s.config = std::string(model) + ".json";
    s.mesh = "one: 1";
    s.modules.clear();
    s.batch = all["batch"];
    s.prompt_tokens = all["prompt_tokens"];
    s.new_tokens = all["new_tokens"];
    const std::unique_ptr<Plan> plan = load_plan(write_spec(std::string("gpu_hf_") + model, s));
    const Checkpoint ckpt = Checkpoint::open(*plan->spec().checkpoint_path);
    Engine engine(*plan, 0, nullptr, load_rank_shards(*plan, 0, ckpt, at::kFloat, kCuda),
                  EngineOptions{kCuda, at::kFloat, /*keep_logits=*/true});
    const Generation g =
        engine.generate(make_engine_inputs(*plan, all["seed"].get<uint64_t>()));
    for (int64_t step = 0; step < s.new_tokens; ++step) {
      for (int64_t r = 0; r < s.batch; ++r) {
        EXPECT_EQ(g.tokens[r][step].item<int64_t>(), ref["tokens"][step][r].get<int64_t>()) << model;
        const nlohmann::json& head = ref["logits_head"][step][r];
        for (size_t v = 0; v < head.size(); ++v) {
          EXPECT_NEAR(g.logits[step][r][v].item<double>(), head[v].get<double>(), 1e-4) << model << " step " << step;
        }
      }
    }
  }
}

// The encoders as CUDA graphs (one per module and item count, captured after the first eager
// prefill, replayed by the next): the same tokens and logits as without graphs, and the graphs
// are there (llava: the vision tower and the projector; whisper: the audio encoder).
TEST_F(GpuRunTest, EncoderGraphsGiveTheEagerRunsLogits) {
  struct Case {
    const char* config;
    int images;
    size_t graphs;
  };
  for (const Case& c : {Case{"tiny-llava.json", 2, 2}, Case{"tiny-whisper.json", 0, 1}}) {
    SpecText s;
    s.config = c.config;
    s.mesh = "one: 1";
    s.modules.clear();
    s.images_per_request = c.images;
    s.prompt_tokens = 5;
    const std::unique_ptr<Plan> plan = load_plan(write_spec(std::string("gpu_encoder_graphs_") + c.config, s));
    const Checkpoint ckpt = Checkpoint::open(*plan->spec().checkpoint_path);
    const EngineInputs inputs = make_engine_inputs(*plan, 7);
    const auto run = [&](bool graphs, int times, size_t* captured) {
      Engine engine(*plan, 0, nullptr, load_rank_shards(*plan, 0, ckpt, at::kFloat, kCuda),
                    EngineOptions{kCuda, at::kFloat, /*keep_logits=*/true, /*profile=*/false, graphs});
      Generation g;
      for (int t = 0; t < times; ++t) g = engine.generate(inputs);
      *captured = engine.encoder_graph_count();
      return g;
    };
    size_t eager_graphs = 0, graphs = 0;
    const Generation eager = run(false, 1, &eager_graphs);
    const Generation replayed = run(true, 2, &graphs);  // the second prefill replays the encoders
    EXPECT_EQ(eager_graphs, 0u) << c.config;
    EXPECT_EQ(graphs, c.graphs) << c.config;
    EXPECT_TRUE(at::equal(eager.tokens, replayed.tokens)) << c.config;
    EXPECT_LT((eager.logits - replayed.logits).abs().max().item<double>(), 1e-4) << c.config;
  }
}

}  // namespace
}  // namespace shardplan
