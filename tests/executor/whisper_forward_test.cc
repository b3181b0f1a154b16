// Differential tests of Whisper's audio encoder (models/whisper/whisper_forward.h): tiny-whisper's
// encoder on every rank of a plan, each rank on a thread over the in-process communicator,
// running the plan's audio-stream collectives as the runtime binds them (after each inner block
// of a tensor-parallel encoder, after the encoder), against the unsharded plan's run.
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
#include "models/whisper/whisper_forward.h"
#include "tests/executor/runtime_test_util.h"

namespace shardplan {
namespace {

using testing::load_plan;
using testing::run_ranks;
using testing::SpecText;
using testing::write_spec;

constexpr int64_t kClips = 3;  // one per request

const RankGroup& group_holding(const std::vector<RankGroup>& groups, int64_t rank) {
  for (const RankGroup& g : groups) {
    if (std::find(g.begin(), g.end(), rank) != g.end()) return g;
  }
  throw std::logic_error("rank in no group");
}

struct EncoderRun {
  std::vector<at::Tensor> every_rank;            // encoder states, whole
  std::vector<std::vector<std::string>> calls;
};

// The encoder of `plan` on every rank, binding its audio-stream collectives (as in
// llava_forward_test.cc's image path): data mode pads the clips to the group and drops the
// padding after the plan's all_gather.
EncoderRun run_encoder(const Plan& plan, const at::Tensor& features) {
  const int world = static_cast<int>(plan.world_size());
  const int64_t items = features.size(0);
  const ModulePlan& encoder = plan.modules.at(0);
  EXPECT_EQ(encoder.module->kind, ModuleKind::kEncoder);
  EncoderRun out;
  out.every_rank.resize(world);
  out.calls.resize(world);
  run_ranks(world, [&](int rank, testing::ThreadCommunicator& comm) {
    if (world > 1) comm.create_groups(engine_groups(plan));
    const Checkpoint checkpoint = Checkpoint::open(*plan.spec().checkpoint_path);
    const TensorShards shards = load_rank_shards(plan, rank, checkpoint, at::kFloat, at::kCPU);
    const WhisperEncoder model(plan.graph(), shards);
    const auto run_after = [&](const std::string& after, at::Tensor x) {
      for (const Collective& c : plan.comms) {
        if (c.stream != Stream::kAudio || c.after != after) continue;
        const RankGroup& group = group_holding(c.groups, rank);
        const std::string what = std::string(to_string(c.op)) + " after " + after;
        if (c.op == CollectiveOp::kAllReduce) {
          x = x.contiguous();
          comm.all_reduce(x, group, what);
        } else if (c.op == CollectiveOp::kAllGather) {
          x = comm.all_gather(x.contiguous(), 0, group, what);
          if (x.size(0) > items) x = x.narrow(0, 0, items);
        } else {
          throw std::logic_error("unexpected collective on the audio stream: " + what);
        }
      }
      return x;
    };
    at::Tensor input = features;
    if (encoder.mode == ParallelMode::kData) {
      const RankGroup group = group_holding(plan.mesh.groups(encoder.axes), rank);
      const int64_t index = std::find(group.begin(), group.end(), rank) - group.begin();
      const ItemSlice slice = encoder_item_slice(items, static_cast<int64_t>(group.size()), index);
      const at::Tensor padded =
          at::cat({features, at::zeros({slice.padded - items, features.size(1), features.size(2)})}, 0);
      input = padded.narrow(0, slice.begin, slice.count);
    }
    bool whole = true;
    if (encoder.mode == ParallelMode::kTensor) {
      for (const std::string& a : encoder.axes) whole = whole && plan.mesh.coords(rank)[*plan.mesh.axis_index(a)] == 0;
    }
    const at::Tensor x = model.encode(input, whole, run_after);
    out.every_rank[rank] = run_after(encoder.module->path, x);
    out.calls[rank] = comm.calls();
  });
  return out;
}

SpecText whisper_spec(const std::string& mesh, const std::string& modules) {
  SpecText s;
  s.config = "tiny-whisper.json";
  s.mesh = mesh;
  s.modules = modules;
  s.batch = kClips;
  return s;
}

at::Tensor log_mel() { return make_uniform_inputs({kClips, 16, 100}, 0); }  // tiny-whisper: 16 mel, 2 x 50

const at::Tensor& unsharded() {
  static const at::Tensor states =
      run_encoder(*load_plan(write_spec("whisper_one", whisper_spec("one: 1", ""))), log_mel()).every_rank[0];
  return states;
}

int64_t count_calls(const std::vector<std::string>& calls, const std::string& prefix) {
  return std::count_if(calls.begin(), calls.end(), [&](const std::string& c) { return c.rfind(prefix, 0) == 0; });
}

TEST(WhisperEncoderTest, UnshardedStatesHaveTheEncoderShape) {
  at::set_num_threads(1);
  const at::Tensor& s = unsharded();
  EXPECT_EQ(s.sizes(), at::IntArrayRef({kClips, 50, 128}));
  EXPECT_TRUE(at::isfinite(s).all().item<bool>());
  EXPECT_GT((s[0] - s[1]).abs().max().item<double>(), 1e-3);
}

struct ModeCase {
  std::string encoder;
  int ranks;
};

class WhisperModeTest : public ::testing::TestWithParam<ModeCase> {};

TEST_P(WhisperModeTest, MatchesUnsharded) {
  at::set_num_threads(1);
  const ModeCase& c = GetParam();
  const std::string name = "whisper_" + c.encoder + "_" + std::to_string(c.ranks);
  const std::string modules = "  - kind: [embedding, attention, cross_attention, mlp, lm_head]\n    mode: tensor\n"
                              "    axes: [tp]\n  - kind: encoder\n    mode: " + c.encoder + "\n" +
                              (c.encoder == "replicate" ? "" : "    axes: [tp]\n");
  const std::unique_ptr<Plan> plan = load_plan(write_spec(name, whisper_spec("tp: " + std::to_string(c.ranks), modules)));
  const EncoderRun run = run_encoder(*plan, log_mel());
  for (int r = 0; r < c.ranks; ++r) {
    const at::Tensor& s = run.every_rank[r];
    ASSERT_EQ(s.sizes(), unsharded().sizes()) << name << " rank " << r;
    EXPECT_LT((s - unsharded()).abs().max().item<double>(), 1e-4) << name << " rank " << r;
    // Tensor: an all_reduce after each of the 4 inner blocks; data: one all_gather of the clips.
    EXPECT_EQ(count_calls(run.calls[r], "all_reduce all_reduce after model.encoder.layers."),
              c.encoder == "tensor" ? 4 : 0)
        << name;
    EXPECT_EQ(count_calls(run.calls[r], "all_gather all_gather after model.encoder"), c.encoder == "data" ? 1 : 0)
        << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, WhisperModeTest,
                         ::testing::Values(ModeCase{"replicate", 2}, ModeCase{"tensor", 2}, ModeCase{"data", 2},
                                           ModeCase{"replicate", 4}, ModeCase{"tensor", 4}, ModeCase{"data", 4}),
                         [](const ::testing::TestParamInfo<ModeCase>& info) {
                           return info.param.encoder + "_" + std::to_string(info.param.ranks);
                         });

}  // namespace
}  // namespace shardplan
