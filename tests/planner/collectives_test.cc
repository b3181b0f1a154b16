// The layout walk on small hand-made cases where the expected collectives are written out:
// llava with a tensor-parallel tower, data-parallel whisper encoder, and the final gather.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "planner/plan/collectives.h"
#include "planner/plan/plan.h"

namespace shardplan {
namespace {

std::unique_ptr<Plan> plan_from_text(const std::string& name, const std::string& text) {
  const std::string path = "examples/.test-" + name + ".yaml";
  std::ofstream(path) << text;
  Diagnostics diags;
  CheckedSpec checked;
  const CheckOutcome o = check_spec_file(path, diags, &checked);
  std::filesystem::remove(path);
  std::string msg;
  for (const auto& d : diags.all()) msg += format_diagnostic(d) + "\n";
  EXPECT_EQ(o, CheckOutcome::kValid) << msg;
  if (o != CheckOutcome::kValid) return nullptr;
  return build_plan(std::move(checked));
}

std::vector<std::string> ops(const Plan& p) {
  std::vector<std::string> out;
  for (const auto& c : p.comms) {
    std::string axes;
    for (const auto& a : c.axes) axes += (axes.empty() ? "" : ",") + a;
    out.push_back(std::string(to_string(c.op)) + "[" + axes + "] after " + c.after);
  }
  return out;
}

TEST(Collectives, TensorParallelVisionTowerReducesAfterEveryBlock) {
  auto plan = plan_from_text("llava-tp", R"(version: 1
model:
  config: ../models/configs/tiny-llava.json
mesh:
  tp: 2
modules:
  - kind: [encoder, projector]
    mode: tensor
    axes: [tp]
workload:
  batch: 2
)");
  ASSERT_TRUE(plan);
  // tiny-llava: 3 CLIP layers; projector tensor; language model replicated.
  const std::vector<std::string> expected = {
      "all_reduce[tp] after vision_tower.vision_model.encoder.layers.0.self_attn",
      "all_reduce[tp] after vision_tower.vision_model.encoder.layers.0.mlp",
      "all_reduce[tp] after vision_tower.vision_model.encoder.layers.1.self_attn",
      "all_reduce[tp] after vision_tower.vision_model.encoder.layers.1.mlp",
      "all_reduce[tp] after vision_tower.vision_model.encoder.layers.2.self_attn",
      "all_reduce[tp] after vision_tower.vision_model.encoder.layers.2.mlp",
      "all_reduce[tp] after multi_modal_projector",
  };
  EXPECT_EQ(ops(*plan), expected);
}

TEST(Collectives, DataParallelAudioEncoderGathersBeforeCrossAttention) {
  auto plan = plan_from_text("whisper-dp", R"(version: 1
model:
  config: ../models/configs/tiny-whisper.json
mesh:
  tp: 2
modules:
  - kind: encoder
    mode: data
    axes: [tp]
  - kind: [embedding, attention, cross_attention, mlp, lm_head]
    mode: tensor
    axes: [tp]
workload:
  batch: 2
  prompt_tokens: 4
  new_tokens: 8
)");
  ASSERT_TRUE(plan);
  auto list = ops(*plan);
  // The audio stream is gathered once, in front of the first cross-attention.
  ASSERT_GE(list.size(), 2u);
  EXPECT_EQ(list[0], "all_reduce[tp] after model.decoder.embed_tokens");
  EXPECT_EQ(list[1], "all_gather[tp] after model.encoder");
  EXPECT_EQ(list[2], "all_reduce[tp] after model.decoder.layers.0.self_attn");
  EXPECT_EQ(plan->comms[1].before, "model.decoder.layers.0.encoder_attn");
  EXPECT_EQ(plan->comms[1].stream, Stream::kAudio);
  int audio = 0;
  for (const auto& c : plan->comms) audio += c.stream == Stream::kAudio;
  EXPECT_EQ(audio, 1);
  EXPECT_EQ(list.back(), "all_gather[tp] after proj_out");
}

TEST(Collectives, ExpertsOverABatchAxisAndATensorAxis) {
  // Requests over dp, attention tensor over tp, every expert on one of the 4 ranks: the tokens,
  // split over dp, go to their experts' owners by all_to_all over dp and back; over tp they are
  // whole, each rank runs its own experts, and the partial sums meet in one all_reduce over tp.
  auto plan = plan_from_text("moe-dp-tp", R"(version: 1
model:
  config: ../models/configs/tiny-mixtral.json
mesh: {dp: 2, tp: 2}
batch_axes: [dp]
modules:
  - {kind: [embedding, attention, lm_head], mode: tensor, axes: [tp]}
  - {kind: moe, mode: expert, axes: [dp, tp]}
workload:
  batch: 4
)");
  ASSERT_TRUE(plan);
  const std::vector<std::string> list = ops(*plan);
  const std::vector<std::string> layer0 = {
      "all_reduce[tp] after model.layers.0.self_attn",
      "all_to_all[dp] after model.layers.0.self_attn",
      "all_to_all[dp] after model.layers.0.block_sparse_moe",
      "all_reduce[tp] after model.layers.0.block_sparse_moe",
  };
  ASSERT_GE(list.size(), 5u);
  EXPECT_EQ(std::vector<std::string>(list.begin() + 1, list.begin() + 5), layer0);
  EXPECT_EQ(plan->comms[2].purpose, CollectivePurpose::kMoeDispatch);
  EXPECT_EQ(plan->comms[3].purpose, CollectivePurpose::kMoeCombine);
  EXPECT_EQ(plan->comms[2].groups, (std::vector<RankGroup>{{0, 2}, {1, 3}}));
}

TEST(Collectives, ModuleLayoutsNeverComputeOnPartialSums) {
  auto plan = plan_from_text("mixed", R"(version: 1
model:
  config: ../models/configs/tiny-mixtral.json
mesh:
  dp: 2
  tp: 2
batch_axes: [dp]
modules:
  - kind: [embedding, attention, lm_head]
    mode: tensor
    axes: [tp]
  - kind: moe
    mode: expert
    axes: [tp]
workload:
  batch: 4
)");
  ASSERT_TRUE(plan);
  for (const auto& mp : plan->modules) {
    for (size_t x = 0; x < mp.input_layout.axes.size(); ++x) {
      EXPECT_NE(mp.input_layout.axes[x], AxisState::kPartial) << mp.module->path;
      EXPECT_NE(mp.input_layout.axes[x], AxisState::kVocabSplit) << mp.module->path;
    }
    // dp stays batch-split everywhere.
    EXPECT_EQ(mp.input_layout.axes[0], AxisState::kBatchSplit) << mp.module->path;
  }
}

}  // namespace
}  // namespace shardplan
