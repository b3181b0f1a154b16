// LLaVA and Whisper on the runtime, end to end: every mode of the vision / audio encoder (and of
// llava's projector, whisper's cross-attention) with the language model or decoder sharded
// around it, on 2 and 4 ranks (threads over the in-process communicator), against the unsharded
// run of the same weights and inputs: tokens identical, logits within the fp32 tolerance, and the
// plan's encoder-stream collectives really run (spec-format.md §2, §3).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "executor/runtime/engine.h"
#include "executor/runtime/run_report.h"
#include "tests/executor/runtime_test_util.h"

namespace shardplan {
namespace {

using testing::load_plan;
using testing::run_threaded;
using testing::SpecText;
using testing::ThreadedRun;
using testing::write_spec;

int64_t count_calls(const std::vector<std::string>& calls, const std::string& prefix) {
  return std::count_if(calls.begin(), calls.end(), [&](const std::string& c) { return c.rfind(prefix, 0) == 0; });
}

std::string rule(const std::string& kinds, const std::string& mode, const std::string& axes) {
  return "  - kind: " + kinds + "\n    mode: " + mode + "\n    axes: " + axes + "\n";
}

class MultimodalRunTest : public ::testing::Test {
 protected:
  void SetUp() override { at::set_num_threads(1); }

  static std::vector<std::vector<int64_t>> unsharded(SpecText base, const std::string& name) {
    base.mesh = "one: 1";
    base.batch_axes.clear();
    base.modules.clear();
    return run_threaded(*load_plan(write_spec(name + "_unsharded", base)), /*verify=*/false).report.generated;
  }

  // Runs `spec` sharded with --verify and compares with the unsharded run.
  static ThreadedRun expect_matches_unsharded(const std::string& name, const SpecText& spec) {
    const std::unique_ptr<Plan> plan = load_plan(write_spec(name, spec));
    const ThreadedRun run = run_threaded(*plan);
    const RunReport& r = run.report;
    EXPECT_EQ(r.world_size, plan->world_size()) << name;
    EXPECT_TRUE(r.verify.has_value()) << name;
    if (r.verify) {
      EXPECT_TRUE(r.verify->passed) << name << ": max |diff| " << r.verify->max_abs_diff;
      EXPECT_TRUE(r.verify->tokens_identical) << name << ": " << r.verify->token_mismatches << " tokens differ";
      EXPECT_LT(r.verify->max_abs_diff, 1e-4) << name;
    }
    EXPECT_EQ(r.generated, unsharded(spec, name)) << name;
    EXPECT_EQ(r.generated.size(), static_cast<size_t>(spec.batch)) << name;
    return run;
  }
};

// ---- llava: vision tower replicate / tensor / data, projector, language model around it ----

SpecText llava(int ranks, const std::string& modules) {
  SpecText s;
  s.config = "tiny-llava.json";
  s.mesh = "tp: " + std::to_string(ranks);
  s.modules = modules;
  s.batch = 4;
  s.prompt_tokens = 5;
  s.new_tokens = 4;
  s.images_per_request = 2;
  return s;
}

constexpr int kSteps = 4;
constexpr char kLlavaText[] = "[embedding, attention, mlp, lm_head]";

TEST_F(MultimodalRunTest, LlavaEveryTowerAndProjectorMode) {
  for (int n : {2, 4}) {
    for (const std::string tower : {"replicate", "tensor", "data"}) {
      for (const std::string projector : {"replicate", "tensor"}) {
        const std::string name = "llava_" + tower + "_" + projector + "_tp" + std::to_string(n);
        const auto axes = [](const std::string& mode) { return mode == "replicate" ? "[]" : "[tp]"; };
        const ThreadedRun run = expect_matches_unsharded(
            name, llava(n, rule("encoder", tower, axes(tower)) + rule("projector", projector, axes(projector)) +
                               rule(kLlavaText, "tensor", "[tp]")));
        for (const auto& calls : run.calls) {
          // The items of a data-parallel tower are gathered once, in prefill, in front of the
          // projector when it is tensor-parallel (it needs them whole), else at the merge.
          EXPECT_EQ(count_calls(calls, "all_gather all_gather[tp] after vision_tower") +
                        count_calls(calls, "all_gather all_gather[tp] after multi_modal_projector"),
                    tower == "data" ? 1 : 0)
              << name;
          if (tower == "data" && projector == "tensor") {
            EXPECT_EQ(count_calls(calls, "all_gather all_gather[tp] after vision_tower"), 1) << name;
          }
          // A tensor-parallel tower reduces after every inner block (3 layers x attention, MLP).
          EXPECT_EQ(count_calls(calls, "all_reduce all_reduce[tp] after vision_tower.vision_model.encoder.layers."),
                    tower == "tensor" ? 6 : 0)
              << name;
          EXPECT_EQ(count_calls(calls, "all_reduce all_reduce[tp] after multi_modal_projector"),
                    projector == "tensor" ? 1 : 0)
              << name;
          EXPECT_EQ(count_calls(calls, "all_reduce all_reduce[tp] after language_model.model.layers.0.self_attn"),
                    kSteps)
              << name;
        }
      }
    }
  }
}

TEST_F(MultimodalRunTest, LlavaDataParallelLanguageModel) {
  // Attention data-parallel over the same ranks as the data-parallel tower: every rank's images
  // are those of its own requests, so nothing is gathered; and with dp x tp batch axes.
  for (int n : {2, 4}) {
    const ThreadedRun run = expect_matches_unsharded(
        "llava_all_data_tp" + std::to_string(n),
        llava(n, rule("encoder", "data", "[tp]") + rule("[embedding, attention, mlp, lm_head]", "data", "[tp]")));
    for (const auto& calls : run.calls) EXPECT_EQ(count_calls(calls, "all_gather all_gather[tp] after multi"), 0);
  }
  SpecText s = llava(4, rule("encoder", "data", "[tp]") + rule(kLlavaText, "tensor", "[tp]"));
  s.mesh = "dp: 2;tp: 2";
  s.batch_axes = "[dp]";
  expect_matches_unsharded("llava_dp2_tp2", s);
}

TEST_F(MultimodalRunTest, LlavaPadsImagesThatDoNotDivide) {
  // 3 requests x 1 image over 2 and 4 ranks: the tower pads the items to 4; the gather drops it.
  for (int n : {2, 4}) {
    SpecText s = llava(n, rule("encoder", "data", "[tp]") + rule(kLlavaText, "replicate", "[]"));
    s.batch = 3;
    s.images_per_request = 1;
    expect_matches_unsharded("llava_pad_tp" + std::to_string(n), s);
  }
}

// ---- whisper: encoder replicate / tensor / data; decoder with split cross-attention ----

SpecText whisper(int ranks, const std::string& modules) {
  SpecText s;
  s.config = "tiny-whisper.json";
  s.mesh = "tp: " + std::to_string(ranks);
  s.modules = modules;
  s.batch = 4;
  s.prompt_tokens = 3;
  s.new_tokens = 4;
  return s;
}

constexpr char kWhisperDecoder[] = "[embedding, attention, cross_attention, mlp, lm_head]";

TEST_F(MultimodalRunTest, WhisperEncoderReplicateTensorData) {
  for (int n : {2, 4}) {
    for (const std::string mode : {"replicate", "tensor", "data"}) {
      const std::string name = "whisper_encoder_" + mode + "_tp" + std::to_string(n);
      const std::string axes = mode == "replicate" ? "[]" : "[tp]";
      const ThreadedRun run = expect_matches_unsharded(
          name, whisper(n, rule("encoder", mode, axes) + rule(kWhisperDecoder, "tensor", "[tp]")));
      for (const auto& calls : run.calls) {
        EXPECT_EQ(count_calls(calls, "all_gather all_gather[tp] after model.encoder"), mode == "data" ? 1 : 0) << name;
        EXPECT_EQ(count_calls(calls, "all_reduce all_reduce[tp] after model.encoder.layers."), mode == "tensor" ? 4 : 0)
            << name;
        // Split cross-attention: its partial output reduced every step.
        EXPECT_EQ(count_calls(calls, "all_reduce all_reduce[tp] after model.decoder.layers.0.encoder_attn"), kSteps)
            << name;
      }
    }
  }
}

TEST_F(MultimodalRunTest, WhisperCrossAttentionModes) {
  // Cross-attention replicated or data-parallel while the rest of the decoder is split.
  for (int n : {2, 4}) {
    for (const std::string mode : {"replicate", "data"}) {
      const std::string axes = mode == "replicate" ? "[]" : "[tp]";
      expect_matches_unsharded("whisper_cross_" + mode + "_tp" + std::to_string(n),
                               whisper(n, rule("encoder", "data", "[tp]") +
                                              rule("[embedding, attention, mlp, lm_head]", "tensor", "[tp]") +
                                              rule("cross_attention", mode, axes)));
    }
  }
}

TEST_F(MultimodalRunTest, WhisperDataParallelDecoderAndBatchAxes) {
  for (int n : {2, 4}) {
    expect_matches_unsharded("whisper_all_data_tp" + std::to_string(n),
                             whisper(n, rule("[encoder, embedding, attention, cross_attention, mlp, lm_head]", "data",
                                             "[tp]")));
  }
  SpecText s = whisper(4, rule("encoder", "tensor", "[tp]") + rule(kWhisperDecoder, "tensor", "[tp]"));
  s.mesh = "dp: 2;tp: 2";
  s.batch_axes = "[dp]";
  expect_matches_unsharded("whisper_dp2_tp2", s);
}

TEST_F(MultimodalRunTest, ReportsEncoderTime) {
  const RunReport r =
      run_threaded(*load_plan(write_spec("llava_times", llava(2, rule("encoder", "data", "[tp]") +
                                                                      rule(kLlavaText, "tensor", "[tp]")))),
                   /*verify=*/false, at::kCPU, /*profile=*/true)
          .report;
  std::vector<std::string> kinds;
  for (const auto& [kind, seconds] : r.time_by_kind_s) {
    kinds.push_back(kind);
    EXPECT_GT(seconds, 0.0) << kind;
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"embedding", "attention", "mlp", "encoder", "projector", "lm_head",
                                             "collectives"}));
}

}  // namespace
}  // namespace shardplan
