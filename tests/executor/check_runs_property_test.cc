// What check passes, the executor runs: random specs (every mode, mesh axes in either order, batch
// axes, on 1, 2 and 4 ranks) for the tiny config of every family. Each spec that `planner check`
// accepts (the spec's checks and the binding of every rank, as the CLI does) must run on threads
// over the in-process communicator and pass --verify against the unsharded run; a spec the
// executor refuses after check accepted it is a failure, as is one whose logits differ.
#include <random>
#include <sstream>

#include <gtest/gtest.h>

#include "planner/plan/binding.h"
#include "tests/executor/runtime_test_util.h"

namespace shardplan {
namespace {

using testing::checkpoint_for;
using testing::run_threaded;
using testing::suite_dir;

struct Family {
  const char* config;
  std::vector<const char*> kinds;  // the kinds that take rules
  bool images = false;
  bool shared_expert = false;  // its MoE has a shared expert (a `shared_expert` key to draw)
};

const std::vector<std::string> kModes = {"replicate", "tensor", "data", "expert"};

// One random spec's YAML for `family`.
std::string random_spec(const Family& family, const std::string& checkpoint, std::mt19937_64& rng) {
  const auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  // Mesh: 1 rank, 2 ranks on one axis, 4 on one axis, or 2 x 2 (names and order random).
  std::vector<std::string> names = {"dp", "tp", "ep"};
  std::shuffle(names.begin(), names.end(), rng);
  std::vector<std::pair<std::string, int>> mesh;
  switch (pick(4)) {
    case 0: mesh = {{names[0], 1}}; break;
    case 1: mesh = {{names[0], 2}}; break;
    case 2: mesh = {{names[0], 4}}; break;
    default: mesh = {{names[0], 2}, {names[1], 2}}; break;
  }
  std::vector<std::string> axes;
  for (const auto& [name, size] : mesh) axes.push_back(name);
  const auto subset = [&](bool non_empty) {
    std::vector<std::string> out;
    for (const std::string& a : axes) {
      if (rng() % 2) out.push_back(a);
    }
    if (non_empty && out.empty()) out.push_back(axes[pick(axes.size())]);
    if (out.size() == 2 && rng() % 2) std::swap(out[0], out[1]);
    return out;
  };
  const auto list = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return "[" + s + "]";
  };

  std::ostringstream y;
  y << "version: 1\nname: random\nmodel:\n  config: " << testing::kConfigDir << family.config
    << "\n  checkpoint: " << checkpoint << "\n  dtype: float32\nmesh:\n";
  for (const auto& [name, size] : mesh) y << "  " << name << ": " << size << "\n";
  const std::vector<std::string> batch_axes = subset(false);
  if (!batch_axes.empty()) y << "batch_axes: " << list(batch_axes) << "\n";
  std::vector<std::string> rules;
  for (const char* kind : family.kinds) {
    if (rng() % 4 == 0) continue;  // left to the defaults
    const std::string mode = kModes[pick(std::string(kind) == "moe" ? 4 : 3)];
    std::string rule = "  - {kind: " + std::string(kind) + ", mode: " + mode;
    if (mode != "replicate") rule += ", axes: " + list(subset(true));
    // A MoE with a shared expert: its own mode half the time (else the default).
    if (family.shared_expert && std::string(kind) == "moe" && rng() % 2) {
      rule += rng() % 2 ? ", shared_expert: {mode: replicate}"
                        : ", shared_expert: {mode: tensor, axes: " + list(subset(true)) + "}";
    }
    rules.push_back(rule + "}\n");
  }
  if (!rules.empty()) {
    y << "modules:\n";
    for (const auto& r : rules) y << r;
  }
  y << "workload:\n  batch: " << (rng() % 2 ? 4 : 8) << "\n  prompt_tokens: 5\n  new_tokens: 3\n";
  if (family.images) y << "  images_per_request: " << 1 + rng() % 2 << "\n";
  return y.str();
}

struct Tally {
  int generated = 0, invalid = 0, not_bindable = 0, ran = 0;
};

// Generates `count` specs for `family` from `seed` and runs every one check accepts.
void check_then_run(const Family& family, uint64_t seed, int count) {
  std::mt19937_64 rng(seed);
  const std::string checkpoint = checkpoint_for(family.config);
  Tally tally;
  for (int i = 0; i < count; ++i) {
    const std::string text = random_spec(family, checkpoint, rng);
    const std::string file = (suite_dir() / ("random_" + std::to_string(i) + ".yaml")).string();
    std::ofstream(file) << text;
    ++tally.generated;
    Diagnostics diags;
    CheckedSpec checked;
    if (check_spec_file(file, diags, &checked) != CheckOutcome::kValid) {
      ++tally.invalid;
      continue;
    }
    const std::unique_ptr<Plan> plan = build_plan(std::move(checked));
    check_executable(*plan, diags);
    if (diags.has_errors()) {
      ++tally.not_bindable;
      continue;
    }
    SCOPED_TRACE("spec " + std::to_string(i) + ":\n" + text);
    try {
      const testing::ThreadedRun run = run_threaded(*plan);
      ASSERT_TRUE(run.report.verify.has_value());
      EXPECT_TRUE(run.report.verify->passed) << "relative error " << run.report.verify->relative_error;
      EXPECT_TRUE(run.report.verify->tokens_identical);
      ++tally.ran;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "check accepted it, the executor failed: " << e.what();
    }
  }
  std::cout << family.config << ": " << tally.generated << " random specs, " << tally.invalid
            << " invalid for the spec's checks, " << tally.not_bindable << " refused by the binding check, "
            << tally.ran << " accepted and run with --verify\n";
  // NOTE: so that the test cannot pass by accepting nothing.
  EXPECT_GE(tally.ran, count / 4) << "too few random specs were valid to say anything";
}

constexpr int kSpecsPerFamily = 200;

TEST(CheckRunsProperty, Llama) {
  check_then_run({"tiny-llama.json", {"embedding", "attention", "mlp", "lm_head"}}, 1, kSpecsPerFamily);
}
TEST(CheckRunsProperty, Qwen2) {
  check_then_run({"tiny-qwen2.json", {"embedding", "attention", "mlp", "lm_head"}}, 2, kSpecsPerFamily);
}
TEST(CheckRunsProperty, Mixtral) {
  check_then_run({"tiny-mixtral.json", {"embedding", "attention", "moe", "lm_head"}}, 3, kSpecsPerFamily);
}
TEST(CheckRunsProperty, Qwen2Moe) {
  check_then_run({"tiny-qwen2-moe.json", {"embedding", "attention", "moe", "lm_head"}, false, true}, 6,
                 kSpecsPerFamily);
}
TEST(CheckRunsProperty, Llava) {
  check_then_run({"tiny-llava.json", {"encoder", "projector", "embedding", "attention", "mlp", "lm_head"}, true}, 4,
                 kSpecsPerFamily);
}
TEST(CheckRunsProperty, Whisper) {
  check_then_run({"tiny-whisper.json", {"encoder", "embedding", "attention", "cross_attention", "mlp", "lm_head"}},
                 5, kSpecsPerFamily);
}

}  // namespace
}  // namespace shardplan
