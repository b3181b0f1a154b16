// Mixtral on the runtime: the router against hand-computed top-2 weights, and differential tests
// of every MoE mode combination (spec-format.md §2, §3) on 2 and 4 ranks against the unsharded run
// of the same weights: tokens identical, logits within the fp32 tolerance, and the plan's
// collectives (all_reduce, or the all_to_all dispatch / combine pair) really run.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "executor/runtime/engine.h"
#include "executor/runtime/run_report.h"
#include "models/layers/norm.h"
#include "models/mixtral/mixtral_forward.h"
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

TEST(MixtralRouterTest, TopTwoRenormalisedAsTransformers) {
  // gate rows e0..e3; token 0 = [1, 0] gives logits [1, 2, 0, 3], token 1 = [0, 1] gives
  // [0.5, 0, -1, 0.25]. softmax then top-2 then renormalise: the two weights are
  // sigmoid(l_a - l_b) and its complement, whatever the other logits are.
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  const at::Tensor gate = at::tensor({1.0f, 0.5f, 2.0f, 0.0f, 0.0f, -1.0f, 3.0f, 0.25f}, f32).view({4, 2});
  const at::Tensor x = at::tensor({1.0f, 0.0f, 0.0f, 1.0f}, f32).view({2, 2});
  const MoeRouting r = mixtral_route(x, gate, 2);
  ASSERT_EQ(r.experts.sizes(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(r.experts[0][0].item<int64_t>(), 3);
  EXPECT_EQ(r.experts[0][1].item<int64_t>(), 1);
  EXPECT_EQ(r.experts[1][0].item<int64_t>(), 0);
  EXPECT_EQ(r.experts[1][1].item<int64_t>(), 3);
  const double a = 1 / (1 + std::exp(-1.0));   // e3 vs e1: 3 - 2
  const double b = 1 / (1 + std::exp(-0.25));  // e0 vs e3: 0.5 - 0.25
  EXPECT_NEAR(r.weights[0][0].item<float>(), a, 1e-6);       // 0.7310586
  EXPECT_NEAR(r.weights[0][1].item<float>(), 1 - a, 1e-6);   // 0.2689414
  EXPECT_NEAR(r.weights[1][0].item<float>(), b, 1e-6);       // 0.5621765
  EXPECT_NEAR(r.weights[1][1].item<float>(), 1 - b, 1e-6);   // 0.4378235
  EXPECT_EQ(r.weights.scalar_type(), at::kFloat);
  // Cast back to the activations' dtype.
  EXPECT_EQ(mixtral_route(x.to(at::kBFloat16), gate.to(at::kBFloat16), 2).weights.scalar_type(), at::kBFloat16);
}

// A MoE block of 4 experts (hidden 8, intermediate 6) with random weights.
MixtralMoeWeights random_moe() {
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  MixtralMoeWeights w;
  w.norm = at::ones({8}, f32);
  w.gate = at::randn({4, 8}, f32);
  for (int e = 0; e < 4; ++e) {
    w.w1.push_back(at::randn({6, 8}, f32));
    w.w2.push_back(at::randn({8, 6}, f32));
    w.w3.push_back(at::randn({6, 8}, f32));
  }
  return w;
}

TEST(MixtralRouterTest, MoeIsTheWeightedSumOfTheChosenExperts) {
  // One expert per token at a time, against a dense loop written out here.
  at::manual_seed(3);
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  const MixtralMoeWeights w = random_moe();
  LlamaConfig config;
  config.rms_norm_eps = 1e-5;
  const at::Tensor h = at::randn({2, 3, 8}, f32);
  const at::Tensor out = mixtral_moe_forward(config, 2, w, h, /*adds_whole_terms=*/true, nullptr);
  const at::Tensor x = rms_norm(h, w.norm, 1e-5).view({6, 8});
  const MoeRouting r = mixtral_route(x, w.gate, 2);
  for (int64_t t = 0; t < 6; ++t) {
    at::Tensor expected = h.view({6, 8})[t].clone();
    for (int64_t k = 0; k < 2; ++k) {
      const int64_t e = r.experts[t][k].item<int64_t>();
      const at::Tensor y = at::linear(at::silu(at::linear(x[t], w.w1[e])) * at::linear(x[t], w.w3[e]), w.w2[e]);
      expected += r.weights[t][k] * y;
    }
    EXPECT_TRUE(at::allclose(out.view({6, 8})[t], expected, 1e-5, 1e-5)) << t;
  }
  // Without the experts a rank does not hold, it computes the others' share: the sum is the whole.
  MixtralMoeWeights low = w, high = w;
  for (int e = 0; e < 4; ++e) {
    MixtralMoeWeights& drop = e < 2 ? high : low;
    drop.w1[e] = drop.w2[e] = drop.w3[e] = at::Tensor();
  }
  const at::Tensor sum = mixtral_moe_forward(config, 2, low, h, true, nullptr) +
                         mixtral_moe_forward(config, 2, high, h, false, nullptr);
  EXPECT_TRUE(at::allclose(sum, out, 1e-5, 1e-5));
}

// The dense path (every held expert on every token, weighted; what a CUDA-graph decode runs) and
// the sparse one (rows gathered per expert) give the same tokens.
TEST(MixtralRouterTest, DenseAndSparseExpertsAgree) {
  at::manual_seed(4);
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  const MixtralMoeWeights w = random_moe();
  const at::Tensor x = at::randn({6, 8}, f32);
  ASSERT_TRUE(moe_runs_dense(w, 6, 2));   // 6 x 2 >= 4 experts
  ASSERT_FALSE(moe_runs_dense(w, 1, 2));  // 1 x 2 < 4
  ASSERT_FALSE(moe_runs_dense(w, 200, 2));  // past 128 rows: a prefill goes sparse
  const at::Tensor dense = moe_routed_forward(w, x, 2, true, nullptr);
  for (int64_t t = 0; t < 6; ++t) {
    const at::Tensor sparse = moe_routed_forward(w, x.narrow(0, t, 1), 2, true, nullptr);
    EXPECT_TRUE(at::allclose(dense.narrow(0, t, 1), sparse, 1e-5, 1e-5)) << t;
  }
  // A rank holding 2 of the 4 experts runs dense from 1 token (1 x 2 >= 2).
  MixtralMoeWeights half = w;
  half.w1[0] = half.w2[0] = half.w3[0] = half.w1[3] = half.w2[3] = half.w3[3] = at::Tensor();
  EXPECT_TRUE(moe_runs_dense(half, 1, 2));
}

class MixtralRunTest : public ::testing::Test {
 protected:
  void SetUp() override { at::set_num_threads(1); }

  static RunReport unsharded(SpecText base) {
    base.mesh = "one: 1";
    base.batch_axes.clear();
    base.modules.clear();
    return run_threaded(*load_plan(write_spec("mixtral_unsharded_" + std::to_string(base.batch), base)),
                        /*verify=*/false)
        .report;
  }

  static ThreadedRun expect_matches_unsharded(const std::string& name, SpecText spec) {
    spec.config = "tiny-mixtral.json";
    const std::unique_ptr<Plan> plan = load_plan(write_spec(name, spec));
    const ThreadedRun run = run_threaded(*plan);
    const RunReport& r = run.report;
    EXPECT_EQ(r.world_size, plan->world_size());
    EXPECT_TRUE(r.verify.has_value());
    if (r.verify) {
      EXPECT_TRUE(r.verify->passed) << name << ": max |diff| " << r.verify->max_abs_diff;
      EXPECT_TRUE(r.verify->tokens_identical) << name << ": " << r.verify->token_mismatches << " tokens differ";
      EXPECT_LT(r.verify->max_abs_diff, 1e-4) << name;
    }
    EXPECT_EQ(r.generated, unsharded(spec).generated) << name;
    EXPECT_EQ(r.generated.size(), static_cast<size_t>(spec.batch));
    return run;
  }
};

constexpr int kSteps = 4;   // prefill + 3 decode steps
constexpr int kLayers = 2;  // tiny-mixtral

// Every rank exchanged its tokens with an all_to_all dispatch and combine over `axis` in every
// layer at every step.
void expect_exchanged_over(const ThreadedRun& run, const std::string& axis) {
  for (const auto& calls : run.calls) {
    EXPECT_EQ(count_calls(calls, "all_to_all all_to_all[" + axis + "] dispatch in model.layers."), kLayers * kSteps);
    EXPECT_EQ(count_calls(calls, "all_to_all all_to_all[" + axis + "] combine in model.layers."), kLayers * kSteps);
  }
}

TEST_F(MixtralRunTest, MoeTensorOverTwoAndFour) {
  for (int n : {2, 4}) {
    SpecText s;
    s.mesh = "tp: " + std::to_string(n);
    s.modules = "  - kind: [embedding, attention, moe, lm_head]\n    mode: tensor\n    axes: [tp]\n";
    const ThreadedRun run = expect_matches_unsharded("mixtral_moe_tp" + std::to_string(n), s);
    for (const auto& calls : run.calls) {
      EXPECT_EQ(count_calls(calls, "all_reduce all_reduce[tp] after model.layers.0.block_sparse_moe"), kSteps);
    }
  }
}

TEST_F(MixtralRunTest, AttentionTensorMoeExpertSameRanksAllReduces) {
  for (int n : {2, 4}) {
    SpecText s;
    s.mesh = "ep: " + std::to_string(n);
    s.modules =
        "  - kind: [embedding, attention, lm_head]\n    mode: tensor\n    axes: [ep]\n"
        "  - kind: moe\n    mode: expert\n    axes: [ep]\n";
    const ThreadedRun run = expect_matches_unsharded("mixtral_attn_tp_moe_ep" + std::to_string(n), s);
    for (const auto& calls : run.calls) {
      EXPECT_EQ(count_calls(calls, "all_reduce all_reduce[ep] after model.layers.1.block_sparse_moe"), kSteps);
      EXPECT_EQ(count_calls(calls, "all_to_all"), 0);
    }
  }
}

TEST_F(MixtralRunTest, AttentionDataMoeExpertAllToAll) {
  for (int n : {2, 4}) {
    SpecText s;
    s.mesh = "ep: " + std::to_string(n);
    s.batch = 8;
    s.modules =
        "  - kind: [embedding, attention, lm_head]\n    mode: data\n    axes: [ep]\n"
        "  - kind: moe\n    mode: expert\n    axes: [ep]\n";
    const ThreadedRun run = expect_matches_unsharded("mixtral_attn_dp_moe_ep" + std::to_string(n), s);
    expect_exchanged_over(run, "ep");
    for (const auto& calls : run.calls) EXPECT_EQ(count_calls(calls, "all_reduce"), 0);
  }
}

TEST_F(MixtralRunTest, DataTimesExpertWithBatchAxes) {
  // {dp: 2, ep: 2}, requests split over dp. Attention tensor over ep and experts over ep: tokens
  // replicated over ep, so each rank runs its experts and the all_reduce over ep follows.
  SpecText s;
  s.mesh = "dp: 2;ep: 2";
  s.batch_axes = "[dp]";
  s.modules =
      "  - kind: [embedding, attention, lm_head]\n    mode: tensor\n    axes: [ep]\n"
      "  - kind: moe\n    mode: expert\n    axes: [ep]\n";
  const ThreadedRun reduced = expect_matches_unsharded("mixtral_dp2_ep2", s);
  for (const auto& calls : reduced.calls) {
    EXPECT_EQ(count_calls(calls, "all_reduce all_reduce[ep] after model.layers.0.block_sparse_moe"), kSteps);
    EXPECT_EQ(count_calls(calls, "all_to_all"), 0);
  }
  // Attention data over ep as well: tokens are batch-split over dp and ep, and reach the owners
  // of their experts inside the dp group through the all_to_all over ep ([0, 1] and [2, 3]).
  s.batch = 8;
  s.modules =
      "  - kind: [embedding, attention, lm_head]\n    mode: data\n    axes: [ep]\n"
      "  - kind: moe\n    mode: expert\n    axes: [ep]\n";
  const ThreadedRun exchanged = expect_matches_unsharded("mixtral_dp2_attn_dp_ep2", s);
  expect_exchanged_over(exchanged, "ep");
  for (const auto& calls : exchanged.calls) EXPECT_EQ(count_calls(calls, "all_reduce"), 0);
}

// Experts over a batch axis and a tensor axis ({dp: 2, tp: 2}, requests over dp, attention
// tensor over tp, experts over [dp, tp]: one pair of experts per rank, DeepSeek's layout of
// data-parallel attention groups around experts over every GPU): the tokens, split over dp, reach
// their experts' owners by all_to_all over dp; replicated over tp, each rank runs its own experts
// and the all_reduce over tp sums them.
TEST_F(MixtralRunTest, ExpertsOverABatchAxisAndATensorAxis) {
  SpecText s;
  s.mesh = "dp: 2;tp: 2";
  s.batch_axes = "[dp]";
  s.modules =
      "  - kind: [embedding, attention, lm_head]\n    mode: tensor\n    axes: [tp]\n"
      "  - kind: moe\n    mode: expert\n    axes: [dp, tp]\n";
  const ThreadedRun run = expect_matches_unsharded("mixtral_dp2_tp2_experts_dp_tp", s);
  expect_exchanged_over(run, "dp");
  for (const auto& calls : run.calls) {
    EXPECT_EQ(count_calls(calls, "all_reduce all_reduce[tp] after model.layers.0.block_sparse_moe"), kSteps);
  }
  // Experts over dp alone, attention data over tp: the tokens are split over both, the experts
  // replicated over tp; only the all_to_all over dp moves tokens.
  s.batch = 8;
  s.modules =
      "  - kind: [embedding, attention, lm_head]\n    mode: data\n    axes: [tp]\n"
      "  - kind: moe\n    mode: expert\n    axes: [dp]\n";
  const ThreadedRun over_dp = expect_matches_unsharded("mixtral_dp2_tp2_experts_dp", s);
  expect_exchanged_over(over_dp, "dp");
  for (const auto& calls : over_dp.calls) EXPECT_EQ(count_calls(calls, "all_reduce"), 0);
}

TEST_F(MixtralRunTest, ReportsTimeByModuleKind) {
  SpecText s;
  s.mesh = "ep: 2";
  s.batch = 8;
  s.modules =
      "  - kind: [embedding, attention, lm_head]\n    mode: data\n    axes: [ep]\n"
      "  - kind: moe\n    mode: expert\n    axes: [ep]\n";
  s.config = "tiny-mixtral.json";
  const RunReport r =
      run_threaded(*load_plan(write_spec("mixtral_times", s)), /*verify=*/false, at::kCPU, /*profile=*/true).report;
  std::vector<std::string> kinds;
  for (const auto& [kind, seconds] : r.time_by_kind_s) {
    kinds.push_back(kind);
    EXPECT_GT(seconds, 0.0) << kind;
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"embedding", "attention", "moe", "lm_head", "collectives"}));
  const nlohmann::json j = report_json(r);
  EXPECT_GT(j.at("time_by_kind_s").at("moe").get<double>(), 0.0);
  EXPECT_NE(report_text(r).find("time by module kind (s, mean over ranks): embedding "), std::string::npos);
}

TEST(MixtralBindingTest, ExpertMembersFollowThePlansSlices) {
  // {ep: 4}, 8 experts over ep: member j holds experts 2j and 2j + 1.
  SpecText s;
  s.config = "tiny-mixtral.json";
  s.mesh = "ep: 4";
  s.batch = 8;
  s.modules =
      "  - kind: [embedding, attention, lm_head]\n    mode: data\n    axes: [ep]\n"
      "  - kind: moe\n    mode: expert\n    axes: [ep]\n";
  const PlanBinding b = bind_plan(*load_plan(write_spec("mixtral_members", s)), 1);
  const ModuleBinding& moe = b.modules.at(2);
  ASSERT_TRUE(moe.exchange);
  EXPECT_EQ(moe.exchange_group, (RankList{0, 1, 2, 3}));
  EXPECT_EQ(moe.expert_member, (std::vector<int64_t>{0, 0, 1, 1, 2, 2, 3, 3}));
  EXPECT_FALSE(b.modules.at(1).exchange);
}

}  // namespace
}  // namespace shardplan
