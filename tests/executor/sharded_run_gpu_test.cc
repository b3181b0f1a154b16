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
#include "executor/runtime/run_report.h"
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
// prefill, replayed by the next): a replay with other images or clips gives the eager run's
// tokens and logits for them (the graph reads its input buffer, refilled each prefill), and the
// graphs are there (llava: the vision tower and the projector; whisper: the audio encoder), also
// in the run's report.
TEST_F(GpuRunTest, EncoderGraphsGiveTheEagerRunsLogits) {
  struct Case {
    const char* config;
    int images;
    int64_t graphs;
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
    const EngineInputs first = make_engine_inputs(*plan, 7), second = make_engine_inputs(*plan, 8);
    Engine eager(*plan, 0, nullptr, load_rank_shards(*plan, 0, ckpt, at::kFloat, kCuda),
                 EngineOptions{kCuda, at::kFloat, /*keep_logits=*/true, /*profile=*/false, /*cuda_graphs=*/false});
    const Generation want = eager.generate(second);
    EXPECT_EQ(eager.encoder_graph_count(), 0u) << c.config;
    Engine graphed(*plan, 0, nullptr, load_rank_shards(*plan, 0, ckpt, at::kFloat, kCuda),
                   EngineOptions{kCuda, at::kFloat, /*keep_logits=*/true, /*profile=*/false, /*cuda_graphs=*/true});
    graphed.generate(first);                         // eager, then captured
    const Generation got = graphed.generate(second);  // replayed on other inputs
    EXPECT_EQ(graphed.encoder_graph_count(), static_cast<size_t>(c.graphs)) << c.config;
    EXPECT_EQ(got.encoder_capture_s, 0.0) << c.config << ": captured again";
    EXPECT_TRUE(at::equal(want.tokens, got.tokens)) << c.config;
    EXPECT_LT((want.logits - got.logits).abs().max().item<double>(), 1e-4) << c.config;
    const at::Tensor& items1 = c.images > 0 ? first.pixels : first.audio;
    const at::Tensor& items2 = c.images > 0 ? second.pixels : second.audio;
    ASSERT_FALSE(at::equal(items1, items2)) << c.config << ": the two seeds gave the same encoder inputs";
    // The report of a run (one prefill: the graphs captured after it) says how many.
    const RunReport r = run_threaded(*plan, /*verify=*/false, kCuda).report;
    EXPECT_EQ(r.encoder_graphs, c.graphs) << c.config;
    EXPECT_EQ(report_json(r)["cuda_graphs"]["encoders"].get<int64_t>(), c.graphs) << c.config;
  }
}

}  // namespace
}  // namespace shardplan
