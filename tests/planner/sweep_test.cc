// `planner sweep`: what it emits passes planner check, what cannot run is never emitted, and the
// ranking follows the workload the way the hardware says it should.
#include "planner/sweep/sweep.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <unistd.h>

#include <gtest/gtest.h>

#include "planner/plan/binding.h"
#include "planner/spec/spec_check.h"

namespace shardplan {
namespace {

namespace fs = std::filesystem;

const std::string kConfigs = std::string(SHARDPLAN_SOURCE_DIR) + "/models/configs/";

fs::path scratch_root() { return fs::temp_directory_path() / ("shardplan-sweep-test-" + std::to_string(::getpid())); }

// Removes the test's scratch folders when the test program ends.
struct ScratchCleanup {
  ~ScratchCleanup() {
    std::error_code ignored;
    fs::remove_all(scratch_root(), ignored);
  }
} scratch_cleanup;

fs::path scratch(const std::string& name) {
  const fs::path dir = scratch_root() / name;
  fs::create_directories(dir);
  return dir;
}

SweepResult sweep(const std::string& config, int64_t world, SweepWorkload workload, const std::string& name) {
  SweepOptions o;
  o.config_path = kConfigs + config;
  o.world = world;
  o.workload = workload;
  o.hardware = load_hardware("h200");
  o.scratch_dir = scratch(name).string();
  return run_sweep(o);
}

// Writes each emitted spec and checks it as `planner check` does (spec and every rank's binding).
void expect_every_emitted_spec_passes_check(const SweepResult& r, const std::string& name) {
  EXPECT_EQ(r.generated, static_cast<int64_t>(r.ranked.size()) + r.invalid + r.too_large);
  const fs::path dir = scratch(name + "-emitted");
  for (size_t i = 0; i < r.ranked.size(); ++i) {
    const std::string file = (dir / ("spec-" + std::to_string(i) + ".yaml")).string();
    std::ofstream(file) << r.ranked[i].yaml;
    Diagnostics diags;
    CheckedSpec checked;
    ASSERT_EQ(check_spec_file(file, diags, &checked), CheckOutcome::kValid) << r.ranked[i].name;
    const std::unique_ptr<Plan> plan = build_plan(std::move(checked));
    check_executable(*plan, diags);
    EXPECT_FALSE(diags.has_errors()) << r.ranked[i].name;
    EXPECT_TRUE(r.ranked[i].prediction.fits);
  }
  // Ranked by predicted throughput.
  for (size_t i = 1; i < r.ranked.size(); ++i) {
    EXPECT_GE(r.ranked[i - 1].prediction.tokens_per_s, r.ranked[i].prediction.tokens_per_s);
  }
}

bool any_named(const SweepResult& r, const std::string& prefix, const std::string& part) {
  for (const SweepCandidate& c : r.ranked) {
    if (c.name.rfind(prefix, 0) == 0 && c.name.find(part) != std::string::npos) return true;
  }
  return false;
}

TEST(SweepTest, EveryEmittedSpecPassesPlannerCheck) {
  SweepWorkload w;
  w.batch = 16;
  w.images_per_request = 2;
  const SweepResult llava = sweep("llava-1.5-7b.json", 4, w, "llava");
  ASSERT_GE(llava.ranked.size(), 10u);
  expect_every_emitted_spec_passes_check(llava, "llava");
  // Mixed layouts on orthogonal axes: requests over dp and ep, attention and vocabulary over tp,
  // experts over ep or ep x tp; on 8 GPUs every mesh of three axes (2 x 2 x 2) among them.
  const SweepResult mixtral = sweep("mixtral-8x7b.json", 8, w, "mixtral");
  expect_every_emitted_spec_passes_check(mixtral, "mixtral");
  EXPECT_TRUE(any_named(mixtral, "dp2-ep2-tp2: attention tensor, moe expert over ep x tp", ""));
  EXPECT_TRUE(any_named(mixtral, "dp2-ep2-tp2: attention tensor, moe expert over ep,", ""));
  EXPECT_TRUE(any_named(mixtral, "ep8-tp1: moe expert over ep, the rest replicated", ""));
  // Next to experts over ep no kind is data-parallel over tp (that plan is the mesh with ep and
  // tp merged), and no two plans share a name.
  std::set<std::string> names;
  for (const SweepCandidate& c : mixtral.ranked) {
    EXPECT_TRUE(names.insert(c.name).second) << "two plans named " << c.name;
    if (c.name.find("-ep") != std::string::npos || c.name.rfind("ep", 0) == 0) {
      EXPECT_EQ(c.name.find(" data"), std::string::npos) << c.name;
    }
  }
  // With a shared expert: replicated or tensor over tp next to the routed experts over ep.
  const SweepResult qwen = sweep("qwen1.5-moe-a2.7b.json", 4, w, "qwen-moe");
  expect_every_emitted_spec_passes_check(qwen, "qwen-moe");
  EXPECT_TRUE(any_named(qwen, "ep2-tp2:", "moe expert over ep x tp (shared tensor)"));
}

TEST(SweepTest, KnownInvalidLayoutsAreNeverEmitted) {
  // whisper-large-v3's vocabulary (51866) divides by 2, not by 4: no vocabulary split over 4.
  // Its decoder holds 448 positions: a short prompt and 128 new tokens.
  const SweepResult whisper = sweep("whisper-large-v3.json", 4, SweepWorkload{32, 4, 128, 1}, "whisper");
  ASSERT_FALSE(whisper.ranked.empty());
  EXPECT_GT(whisper.invalid, 0);
  for (const SweepCandidate& c : whisper.ranked) {
    EXPECT_FALSE(c.name.rfind("tp4:", 0) == 0 && c.name.find("vocabulary tensor") != std::string::npos) << c.name;
  }
  // One request cannot be split: no data mode, no dp axis.
  SweepWorkload one;
  one.batch = 1;
  const SweepResult llama = sweep("llama-3-8b.json", 4, one, "llama-one");
  ASSERT_FALSE(llama.ranked.empty());
  for (const SweepCandidate& c : llama.ranked) {
    EXPECT_EQ(c.name.find("data"), std::string::npos) << c.name;
    EXPECT_EQ(c.name.find("dp"), std::string::npos) << c.name;
  }
  // A model without experts gets no expert axis.
  for (const SweepCandidate& c : llama.ranked) {
    EXPECT_EQ(c.name.substr(0, c.name.find(':')).find("ep"), std::string::npos) << c.name;
  }
  // Llama-3-70B does not fit one H200 replicated (141 GB of weights in bf16).
  const SweepResult big = sweep("llama-3-70b.json", 8, SweepWorkload{}, "llama-70b");
  EXPECT_GT(big.too_large, 0);
  for (const SweepCandidate& c : big.ranked) EXPECT_EQ(c.name.find("dp8"), std::string::npos) << c.name;
}

TEST(SweepTest, TheRankingFollowsTheWorkload) {
  // Long outputs, few requests: decode is bound by reading the weights, so tensor parallel wins.
  SweepWorkload long_outputs;
  long_outputs.batch = 16;
  long_outputs.new_tokens = 2048;
  EXPECT_EQ(sweep("llama-3-8b.json", 4, long_outputs, "long").ranked.at(0).name.rfind("tp4: attention tensor, mlp tensor", 0),
            0u);
  // Many requests, short outputs: compute-bound, and tensor parallel only adds all-reduces: the
  // best plan splits the requests.
  SweepWorkload many;
  many.batch = 512;
  many.prompt_tokens = 128;
  many.new_tokens = 16;
  const std::string best = sweep("llama-3-8b.json", 4, many, "many").ranked.at(0).name;
  EXPECT_TRUE(best.find("dp") != std::string::npos || best.find("data") != std::string::npos) << best;
  // Many images per request: a tensor-parallel tower all-reduces every block's activations, a
  // data-parallel one gathers the features once.
  SweepWorkload images;
  images.batch = 16;
  images.images_per_request = 8;
  EXPECT_NE(sweep("llava-1.5-7b.json", 4, images, "images").ranked.at(0).name.find("encoder data"), std::string::npos);
  // An MoE with many requests: attention data-parallel (no all-reduce per layer) and the experts
  // spread over every GPU (each reads an eighth of them) beat tensor parallel; with few requests
  // and long outputs, tensor parallel (an eighth of every weight per GPU) wins again.
  SweepWorkload crowd;
  crowd.batch = 1024;
  crowd.prompt_tokens = 128;
  crowd.new_tokens = 64;
  const std::string moe_best = sweep("mixtral-8x7b.json", 8, crowd, "moe-crowd").ranked.at(0).name;
  EXPECT_NE(moe_best.find("moe expert over ep"), std::string::npos) << moe_best;
  SweepWorkload few;
  few.batch = 64;
  few.prompt_tokens = 1024;
  few.new_tokens = 512;
  const std::string moe_few = sweep("mixtral-8x7b.json", 8, few, "moe-few").ranked.at(0).name;
  EXPECT_EQ(moe_few.rfind("tp8: attention tensor", 0), 0u) << moe_few;
}

TEST(SweepTest, HardwareFiles) {
  const Hardware h200 = load_hardware("H200");
  EXPECT_EQ(h200.name, "H200");
  EXPECT_EQ(h200.memory_bytes, 141000000000);
  EXPECT_GT(load_hardware("h200").memory_GBps, load_hardware("h100").memory_GBps);
  EXPECT_THROW(load_hardware("tpu-v9"), HardwareError);
  const fs::path bad = scratch("hw") / "bad.yaml";
  std::ofstream(bad) << "name: x\nmemory_bytes: -1\n";
  try {
    load_hardware(bad.string());
    FAIL() << "a negative memory size was accepted";
  } catch (const HardwareError& e) {
    EXPECT_NE(std::string(e.what()).find("memory_bytes"), std::string::npos) << e.what();
    EXPECT_EQ(e.exit_code(), 2);
  }
}

// Calibrated collectives replace the latency + bytes / link model for their (op, ranks): linear
// between points, the first point's time below it, the last two points' rate past the last.
TEST(SweepTest, CalibratedCollectiveTimes) {
  const fs::path file = scratch("hw") / "collectives.yaml";
  const std::string base = "name: x\nmemory_bytes: 1000\nmemory_usable_fraction: 0.9\nmemory_GBps: 100\n"
                           "memory_efficiency: 1\nbf16_tflops: 10\nmatmul_efficiency: 1\nlink_GBps: 1\n"
                           "collective_latency_us: 10\nkernel_overhead_us: 1\nkernels_per_module: 1\n";
  std::ofstream(file) << base
                      << "collectives:\n"
                         "  - {op: all_reduce, ranks: 2, points: [[8000, 5], [1000000, 15], [2000000, 25]]}\n";
  const Hardware h = load_hardware(file.string());
  ASSERT_EQ(h.collectives.size(), 1u);
  EXPECT_DOUBLE_EQ(collective_seconds(h, "all_reduce", 2, 100), 5e-6);        // below the first point
  EXPECT_DOUBLE_EQ(collective_seconds(h, "all_reduce", 2, 8000), 5e-6);
  EXPECT_NEAR(collective_seconds(h, "all_reduce", 2, 1500000), 20e-6, 1e-12);  // between
  EXPECT_NEAR(collective_seconds(h, "all_reduce", 2, 3000000), 35e-6, 1e-12);  // past the last: 10 us a MB
  // No points for this (op, ranks): the latency and the link.
  EXPECT_NEAR(collective_seconds(h, "all_reduce", 4, 1000), 10e-6 + 1e-6, 1e-12);
  EXPECT_NEAR(collective_seconds(h, "all_gather", 2, 1000), 11e-6, 1e-12);
  // A falling last segment does not extrapolate below the first point's time.
  std::ofstream(file) << base << "collectives:\n  - {op: all_reduce, ranks: 2, points: [[0, 9], [100, 5]]}\n";
  EXPECT_DOUBLE_EQ(collective_seconds(load_hardware(file.string()), "all_reduce", 2, 1000000), 9e-6);
  for (const auto& [entry, expected] : std::vector<std::pair<std::string, std::string>>{
           {"  - {op: all_reduce, ranks: 2, points: [[8, 1], [8, 2]]}", "two points at 8 bytes"},
           {"  - {op: broadcast, ranks: 2, points: [[1, 1]]}", "collective op 'broadcast'"},
           {"  - {op: all_reduce, ranks: 1, points: [[1, 1]]}", "'ranks' is at least 2"},
           {"  - {op: all_reduce, ranks: 2, points: [[1, 0]]}", "a point is [bytes sent >= 0, microseconds > 0]"},
           {"  - {op: all_reduce, ranks: 2, points: []}", "at least one point"}}) {
    std::ofstream(file) << base << "collectives:\n" << entry << "\n";
    try {
      load_hardware(file.string());
      ADD_FAILURE() << "accepted " << entry;
    } catch (const HardwareError& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  }
}

// predict() charges each collective its table's time for its op and group size: 1 ms an
// all_reduce over 4 makes a TP4 plan's step slower by 1 ms less the old time, per all_reduce of
// the step; a table for another group size changes nothing.
TEST(SweepTest, PredictionUsesTheCalibratedCollectives) {
  Diagnostics diags;
  CheckedSpec checked;
  ASSERT_EQ(check_spec_file(std::string(SHARDPLAN_SOURCE_DIR) + "/specs/llama-3-8b-tp4.yaml", diags, &checked),
            CheckOutcome::kValid);
  const std::unique_ptr<Plan> plan = build_plan(std::move(checked));
  Hardware h = load_hardware("h200");
  const Prediction base = predict(*plan, h);
  double slower_ms = 0;
  int64_t all_reduces = 0;
  for (const Collective& c : plan->comms) {
    if (c.op != CollectiveOp::kAllReduce || c.bytes_decode == 0) continue;
    ASSERT_EQ(c.groups.front().size(), 4u);
    slower_ms += 1.0 - collective_seconds(h, "all_reduce", 4, c.bytes_decode) * 1e3;
    ++all_reduces;
  }
  ASSERT_GT(all_reduces, 60);  // two a layer
  h.collectives.push_back({"all_reduce", 2, {{0.0, 1000.0}}});
  EXPECT_DOUBLE_EQ(predict(*plan, h).decode_ms, base.decode_ms) << "a table of another group size was used";
  // Only the all_reduces (the plan's all_gather of the logits keeps its time).
  h.collectives.push_back({"all_reduce", 4, {{0.0, 1000.0}}});
  EXPECT_NEAR(predict(*plan, h).decode_ms, base.decode_ms + slower_ms, 1e-6);
}

}  // namespace
}  // namespace shardplan
