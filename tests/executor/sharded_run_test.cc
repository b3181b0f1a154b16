// Differential tests of the runtime (STYLE.md): each sharded run of a tiny model, every rank on a
// thread over the in-process communicator, against the unsharded run of the same weights. The
// generated tokens must be identical and the logits of every step within the fp32 tolerance
// (--verify's comparison, teacher-forced), and the plan's collectives must really have run.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "executor/runtime/engine.h"
#include "executor/runtime/rank_weights.h"
#include "executor/runtime/run_error.h"
#include "executor/runtime/verify.h"
#include "executor/weights/safetensors.h"
#include "tests/executor/runtime_test_util.h"

namespace shardplan {
namespace {

using testing::load_plan;
using testing::run_threaded;
using testing::SpecText;
using testing::ThreadedRun;
using testing::write_spec;

class ShardedRunTest : public ::testing::Test {
 protected:
  void SetUp() override { at::set_num_threads(1); }

  // The unsharded run of `base` (its config, dtype and workload on one rank).
  static RunReport unsharded(SpecText base) {
    base.mesh = "one: 1";
    base.batch_axes.clear();
    base.modules.clear();
    return run_threaded(*load_plan(write_spec("unsharded_" + base.config.substr(base.config.rfind('/') + 1) + "_" +
                                                  base.dtype, base)),
                        /*verify=*/false)
        .report;
  }

  // Runs `spec` sharded and checks it against the unsharded run.
  static ThreadedRun expect_matches_unsharded(const std::string& name, const SpecText& spec) {
    const std::unique_ptr<Plan> plan = load_plan(write_spec(name, spec));
    const ThreadedRun run = run_threaded(*plan);
    const RunReport& r = run.report;
    EXPECT_EQ(r.world_size, plan->world_size());
    EXPECT_EQ(r.requests, spec.batch);
    EXPECT_TRUE(r.verify.has_value());
    // NOTE: in bfloat16 a near tie may flip a token between two orders of summation, so only the
    // logits are held to the (looser) tolerance there; in float32 the tokens must be the same.
    const bool fp32 = spec.dtype == "float32";
    if (r.verify) {
      EXPECT_TRUE(r.verify->passed) << name << ": max |diff| " << r.verify->max_abs_diff << " > " << r.verify->tolerance;
      if (fp32) {
        EXPECT_TRUE(r.verify->tokens_identical) << name << ": " << r.verify->token_mismatches << " tokens differ";
        EXPECT_LT(r.verify->max_abs_diff, 1e-4) << name;
      }
    }
    if (fp32) {
      EXPECT_EQ(r.generated, unsharded(spec).generated) << name;
    }
    EXPECT_EQ(r.generated.size(), static_cast<size_t>(spec.batch));
    for (const auto& tokens : r.generated) EXPECT_EQ(tokens.size(), static_cast<size_t>(spec.new_tokens));
    return run;
  }
};

int64_t count_calls(const std::vector<std::string>& calls, const std::string& prefix) {
  return std::count_if(calls.begin(), calls.end(), [&](const std::string& c) { return c.rfind(prefix, 0) == 0; });
}

TEST_F(ShardedRunTest, UnshardedRunIsItsOwnReference) {
  SpecText s;
  s.mesh = "one: 1";
  s.modules.clear();
  const ThreadedRun run = run_threaded(*load_plan(write_spec("one", s)));
  ASSERT_TRUE(run.report.verify);
  EXPECT_EQ(run.report.verify->max_abs_diff, 0.0);  // the same computation, bit for bit
  EXPECT_TRUE(run.report.verify->tokens_identical);
  EXPECT_GT(run.report.verify->logits_scale, 0.0);
  ASSERT_EQ(run.report.generated.size(), 4u);
  for (const auto& tokens : run.report.generated) {
    ASSERT_EQ(tokens.size(), 4u);
    for (int64_t t : tokens) EXPECT_TRUE(t >= 0 && t < 1024) << t;
  }
  // Requests differ (their prompts do), so their tokens should too.
  EXPECT_NE(run.report.generated[0], run.report.generated[1]);
}

TEST_F(ShardedRunTest, TensorOverTwo) {
  SpecText s;
  const ThreadedRun run = expect_matches_unsharded("tp2", s);
  // Per forward pass: embedding + 4 attention + 4 mlp all_reduces and the lm_head's all_gather,
  // all through the communicator, on every rank; 4 steps (prefill + 3 decode).
  for (const auto& calls : run.calls) {
    EXPECT_EQ(count_calls(calls, "all_reduce all_reduce[tp] after "), 9 * 4);
    EXPECT_EQ(count_calls(calls, "all_gather all_gather[tp] after lm_head"), 4);
  }
}

TEST_F(ShardedRunTest, TensorOverFourReplicatesKvHeads) {
  SpecText s;
  s.mesh = "tp: 4";
  expect_matches_unsharded("tp4", s);
}

TEST_F(ShardedRunTest, DataOverTwo) {
  SpecText s;
  s.mesh = "dp: 2";
  s.modules = "  - kind: [embedding, attention, mlp, lm_head]\n    mode: data\n    axes: [dp]\n";
  const ThreadedRun run = expect_matches_unsharded("data2", s);
  // No activation moves; only the sampled tokens are gathered back for the next step.
  for (const auto& calls : run.calls) {
    EXPECT_EQ(count_calls(calls, "all_reduce"), 0);
    EXPECT_EQ(count_calls(calls, "all_gather all_gather[dp] of the sampled tokens"), 3);
  }
}

TEST_F(ShardedRunTest, DataTwoByTensorTwo) {
  SpecText s;
  s.mesh = "dp: 2;tp: 2";
  s.batch_axes = "[dp]";
  const ThreadedRun run = expect_matches_unsharded("dp2tp2", s);
  for (const auto& calls : run.calls) EXPECT_EQ(count_calls(calls, "all_reduce all_reduce[tp]"), 9 * 4);
}

TEST_F(ShardedRunTest, AttentionDataMlpTensorGathersAndScattersRequests) {
  // attention data over tp, mlp tensor over tp: all_gather of requests in front of each mlp, and
  // reduce_scatter of its partial output in front of the next attention.
  SpecText s;
  s.modules =
      "  - kind: [embedding, mlp, lm_head]\n    mode: tensor\n    axes: [tp]\n"
      "  - kind: attention\n    mode: data\n    axes: [tp]\n";
  const ThreadedRun run = expect_matches_unsharded("attn_dp_mlp_tp", s);
  for (const auto& calls : run.calls) {
    EXPECT_EQ(count_calls(calls, "reduce_scatter"), 4 * 4);
    EXPECT_EQ(count_calls(calls, "all_gather all_gather[tp] after model.layers."), 4 * 4);
  }
}

TEST_F(ShardedRunTest, Bfloat16WithinItsTolerance) {
  SpecText s;
  s.dtype = "bfloat16";
  expect_matches_unsharded("tp2_bf16", s);
}

TEST_F(ShardedRunTest, RowParallelBiasesAreAddedOnce) {
  // Llama with attention_bias and mlp_bias: o_proj and down_proj biases are whole on every rank
  // and must be added by one rank of the group only.
  nlohmann::json config;
  std::ifstream(testing::kConfigDir + "tiny-llama.json") >> config;
  config["attention_bias"] = true;
  config["mlp_bias"] = true;
  const std::string path = (testing::suite_dir() / "tiny-llama-bias.json").string();
  std::ofstream(path) << config.dump(2);
  SpecText s;
  s.config = path;
  expect_matches_unsharded("tp2_bias", s);
}

TEST_F(ShardedRunTest, Qwen2TiedEmbeddingsAndQkvBiases) {
  SpecText s;
  s.config = "tiny-qwen2.json";
  expect_matches_unsharded("qwen2_tp2", s);
}

TEST_F(ShardedRunTest, Mistral) {
  SpecText s;
  s.config = "tiny-mistral.json";
  s.mesh = "dp: 2;tp: 2";
  s.batch_axes = "[dp]";
  expect_matches_unsharded("mistral_dp2tp2", s);
}

TEST_F(ShardedRunTest, NoNewTokensRunsPrefillAlone) {
  SpecText s;
  s.new_tokens = 0;
  const RunReport r = run_threaded(*load_plan(write_spec("no_new_tokens", s))).report;
  ASSERT_EQ(r.generated.size(), 4u);
  for (const auto& tokens : r.generated) EXPECT_TRUE(tokens.empty());
  EXPECT_GT(r.duration_s, 0.0);
  EXPECT_EQ(r.output_tokens(), 0);
  ASSERT_TRUE(r.verify);
  EXPECT_TRUE(r.verify->passed);
}

TEST(RankWeightsTest, EachRankReadsOnlyItsShardsBytesAndTheRightValues) {
  SpecText s;
  s.mesh = "dp: 2;tp: 2";
  s.batch_axes = "[dp]";
  const std::unique_ptr<Plan> plan = load_plan(write_spec("bytes", s));
  const Checkpoint whole = Checkpoint::open(*plan->spec().checkpoint_path);
  uint64_t total = 0;
  for (const ParamPlan& p : plan->params) total += whole.info(p.param->name).nbytes();
  for (int64_t rank = 0; rank < 4; ++rank) {
    const Checkpoint ckpt = Checkpoint::open(*plan->spec().checkpoint_path);
    const TensorShards shards = load_rank_shards(*plan, rank, ckpt, at::kFloat, at::kCPU);
    uint64_t expected = 0;
    for (const ParamPlan& p : plan->params) expected += shard_for_rank(p, plan->mesh, rank).numel() * 4;
    EXPECT_EQ(ckpt.bytes_touched(), expected) << "rank " << rank;
    EXPECT_EQ(rank_shard_bytes(*plan, rank, ckpt), expected);
    EXPECT_LT(expected, total);  // tensor over 2 halves the big matrices
    // The slice holds the right elements: k_proj rows [32 * tp, +32) of the writer's stream.
    const int64_t tp = rank % 2;
    const std::string name = "model.layers.2.self_attn.k_proj.weight";
    const TensorShard& k = shards.at(name);
    ASSERT_EQ(k.tensor.sizes(), (std::vector<int64_t>{32, 256}));
    EXPECT_EQ(k.offset, (std::vector<int64_t>{32 * tp, 0}));
    for (int64_t i : {0, 17, 31}) {
      for (int64_t j : {0, 100, 255}) {
        EXPECT_EQ(k.tensor[i][j].item<float>(), random_weight(name, 7, (32 * tp + i) * 256 + j));
      }
    }
  }
}

TEST(RankWeightsTest, ReportCarriesEachRanksBytes) {
  SpecText s;
  const std::unique_ptr<Plan> plan = load_plan(write_spec("bytes_report", s));
  const RunReport r = run_threaded(*plan, /*verify=*/false).report;
  ASSERT_EQ(r.weight_bytes_read.size(), 2u);
  for (int64_t rank = 0; rank < 2; ++rank) {
    const Checkpoint ckpt = Checkpoint::open(*plan->spec().checkpoint_path);
    EXPECT_EQ(r.weight_bytes_read[rank], rank_shard_bytes(*plan, rank, ckpt));
  }
  EXPECT_FALSE(r.verify.has_value());
}

TEST(PlanBindingTest, UnsupportedLayoutsAreRefused) {
  // {tp: 2, dp: 2}: the tower encodes half of the images per tp rank, the language model splits
  // the requests over [tp, dp]; each rank would have to slice images already split by the tower
  // (a second split of a padded item share is not implemented).
  SpecText s;
  s.config = "tiny-llava.json";
  s.mesh = "tp: 2;dp: 2";
  s.images_per_request = 1;
  s.modules = "  - kind: encoder\n    mode: data\n    axes: [tp]\n"
              "  - kind: [embedding, attention, mlp, lm_head]\n    mode: data\n    axes: [tp, dp]\n";
  try {
    bind_plan(*load_plan(write_spec("llava_split_twice", s)), 0);
    FAIL() << "bound";
  } catch (const BindError& e) {
    EXPECT_NE(std::string(e.what()).find("of items already split over [tp]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not supported by the executor yet"), std::string::npos) << e.what();
  }
  // {tp: 2, dp: 2} with requests split over dp: attention data over tp would need requests rank
  // 1 (tp 0, dp 1) does not hold, since tp comes first in the mixed-radix order.
  SpecText t;
  t.mesh = "tp: 2;dp: 2";
  t.batch_axes = "[dp]";
  t.modules = "  - kind: attention\n    mode: data\n    axes: [tp]\n";
  try {
    bind_plan(*load_plan(write_spec("tp_dp_order", t)), 0);
    FAIL() << "bound";
  } catch (const BindError& e) {
    EXPECT_NE(std::string(e.what()).find("local slice of requests in front of model.layers.0.self_attn"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("not supported by the executor yet"), std::string::npos) << e.what();
  }
}

TEST(PlanBindingTest, ResidualIsAddedOnGroupRankZeroOnly) {
  SpecText s;
  s.mesh = "dp: 2;tp: 2";
  s.batch_axes = "[dp]";
  const std::unique_ptr<Plan> plan = load_plan(write_spec("residual", s));
  for (int64_t rank = 0; rank < 4; ++rank) {
    const PlanBinding b = bind_plan(*plan, rank);
    const bool tp0 = rank % 2 == 0;  // rank = dp * 2 + tp
    EXPECT_EQ(b.modules[1].adds_whole_terms, tp0) << rank;  // layer 0 attention
    EXPECT_EQ(b.modules[2].adds_whole_terms, tp0) << rank;  // layer 0 mlp
    EXPECT_EQ(b.input_requests.begin, 2 * (rank / 2));
    EXPECT_EQ(b.input_requests.count, 2);
  }
}

// Finished requests may leave a rank's batch only where it computes every request all along the
// text stream: tensor-parallel yes; a batch axis, data-parallel attention between tensor-parallel
// MLPs (requests gathered and scattered), or a data-parallel model (tokens exchanged) no.
TEST(PlanBindingTest, EveryRequestEverywhereOnlyWhereNoCollectiveSplitsRequests) {
  const auto everywhere = [](const std::string& name, const SpecText& s) {
    const std::unique_ptr<Plan> plan = load_plan(write_spec(name, s));
    bool all = true, any = false;
    for (int64_t rank = 0; rank < plan->world_size(); ++rank) {
      const bool b = bind_plan(*plan, rank).every_request_everywhere;
      all = all && b;
      any = any || b;
    }
    EXPECT_EQ(all, any) << name << ": the ranks disagree";
    return all;
  };
  SpecText tensor;  // tensor over tp: 2
  EXPECT_TRUE(everywhere("everywhere_tp", tensor));
  SpecText batch_axis;
  batch_axis.mesh = "dp: 2;tp: 2";
  batch_axis.batch_axes = "[dp]";
  EXPECT_FALSE(everywhere("everywhere_dp_tp", batch_axis));
  SpecText attention_data;
  attention_data.modules =
      "  - kind: [embedding, mlp, lm_head]\n    mode: tensor\n    axes: [tp]\n"
      "  - kind: attention\n    mode: data\n    axes: [tp]\n";
  EXPECT_FALSE(everywhere("everywhere_attn_dp", attention_data));
  SpecText data;
  data.mesh = "dp: 2";
  data.modules = "  - kind: [embedding, attention, mlp, lm_head]\n    mode: data\n    axes: [dp]\n";
  EXPECT_FALSE(everywhere("everywhere_data", data));
}

TEST(VerifyTest, CompareLogitsFailsOutsideTheTolerance) {
  const at::Tensor ref = at::randn({3, 2, 10}, at::TensorOptions().dtype(at::kFloat)) * 4;
  const at::Tensor tokens = ref.argmax(-1).transpose(0, 1).contiguous();
  VerifySummary v = compare_logits(ref.clone(), ref, tokens, DType::kFloat32);
  EXPECT_TRUE(v.passed);
  EXPECT_EQ(v.max_abs_diff, 0.0);
  EXPECT_TRUE(v.tokens_identical);
  at::Tensor off = ref.clone();
  const double scale = ref.abs().max().item<double>();
  off[2][1][5] += 2e-3 * std::max(1.0, scale);
  v = compare_logits(off, ref, tokens, DType::kFloat32);
  EXPECT_NEAR(v.relative_error, 2e-3 * std::max(1.0, scale) / ref.norm().item<double>(), 1e-6);
  EXPECT_FALSE(v.passed);
  EXPECT_EQ(v.worst_step, 2);
  EXPECT_EQ(v.worst_request, 1);
  EXPECT_TRUE(compare_logits(off, ref, tokens, DType::kBFloat16).passed);
  at::Tensor other = tokens.clone();
  other[0][0] = (other[0][0].item<int64_t>() + 1) % 10;
  EXPECT_EQ(compare_logits(ref, ref, other, DType::kFloat32).token_mismatches, 1);
}

}  // namespace
}  // namespace shardplan
