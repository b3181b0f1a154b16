// `planner check` diagnostics: every spec in tests/planner/data/check/ against its golden
// .expected file, each check with a failing spec and the same spec fixed, and the five-mistakes
// spec. Regenerate the golden files with: SHARDPLAN_UPDATE_GOLDEN=1 ctest -R SpecCheck (review the diff).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "planner/spec/spec_check.h"

namespace shardplan {
namespace {

namespace fs = std::filesystem;
const std::string kDir = "tests/planner/data/check";

struct Result {
  CheckOutcome outcome;
  Diagnostics diags;
};

Result check(const std::string& file) {
  Result r;
  r.outcome = check_spec_file(file, r.diags, nullptr);
  r.diags.sort();
  return r;
}

int exit_code(CheckOutcome o) {
  return o == CheckOutcome::kValid ? 0 : o == CheckOutcome::kInvalid ? 1 : 2;
}

std::string render(const Result& r) {
  std::string out;
  for (const auto& d : r.diags.all()) out += format_diagnostic(d) + "\n";
  return out + "exit: " + std::to_string(exit_code(r.outcome)) + "\n";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(SpecCheck, EverySpecMatchesItsGoldenDiagnostics) {
  const bool update = std::getenv("SHARDPLAN_UPDATE_GOLDEN") != nullptr;
  int compared = 0;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(kDir)) {
    if (e.path().extension() == ".yaml") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    const std::string spec = kDir + "/" + path.filename().string();
    const std::string golden = kDir + "/" + path.stem().string() + ".expected";
    const std::string got = render(check(spec));
    if (update) {
      std::ofstream(golden) << got;
      continue;
    }
    ASSERT_TRUE(fs::exists(golden)) << "no golden file " << golden
                                    << " (SHARDPLAN_UPDATE_GOLDEN=1 writes it)";
    EXPECT_EQ(read_file(golden), got) << "for " << spec;
    ++compared;
  }
  if (!update) {
    EXPECT_GE(compared, 25);
  }
}

// Writes `spec` with `from` replaced by `to` next to it (relative config paths still resolve).
std::string fixed_copy(const std::string& spec, const std::string& from, const std::string& to) {
  std::string text = read_file(kDir + "/" + spec);
  auto pos = text.find(from);
  EXPECT_NE(pos, std::string::npos) << from << " not in " << spec;
  if (pos != std::string::npos) text.replace(pos, from.size(), to);
  // NOTE: written to a temporary folder, never into the source tree; the config paths, relative
  // to kDir, are made absolute so the copy reads the same configs.
  const std::string source = fs::absolute(kDir).string();
  for (const std::string& prefix : {std::string("config: ../"), std::string("config: configs/")}) {
    for (size_t at = text.find(prefix); at != std::string::npos; at = text.find(prefix, at + 1)) {
      text.insert(at + 8, source + "/");
    }
  }
  const fs::path dir = fs::temp_directory_path() / ("shardplan_check_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string out = (dir / ("fixed-" + spec)).string();
  std::ofstream(out) << text;
  return out;
}

struct CheckCase {
  const char* spec;           // fails with `message`
  const char* message;
  const char* from;           // ... and passes with this edit
  const char* to;
};

class EachCheck : public ::testing::TestWithParam<CheckCase> {};

TEST_P(EachCheck, FailsAndPassesOnceFixed) {
  const CheckCase& c = GetParam();
  const Result bad = check(kDir + "/" + c.spec);
  EXPECT_EQ(bad.outcome, CheckOutcome::kInvalid) << render(bad);
  bool found = false;
  for (const auto& d : bad.diags.all()) {
    found |= d.severity == Severity::kError && d.message.find(c.message) != std::string::npos &&
             d.pos.line > 0;
  }
  EXPECT_TRUE(found) << "expected an error containing '" << c.message << "', got:\n" << render(bad);

  const std::string fixed = fixed_copy(c.spec, c.from, c.to);
  const Result good = check(fixed);
  fs::remove(fixed);
  std::error_code ec;
  fs::remove(fs::path(fixed).parent_path(), ec);  // the folder, once empty
  EXPECT_EQ(good.outcome, CheckOutcome::kValid) << render(good);
}

INSTANTIATE_TEST_SUITE_P(
    Checks, EachCheck,
    ::testing::Values(
        CheckCase{"unknown-axis.yaml", "unknown mesh axis 'tq'", "[tq]", "[tp]"},
        CheckCase{"axis-twice.yaml", "axis 'tp' is listed twice", "[tp, tp]", "[tp]"},
        CheckCase{"batch-axis-in-tensor-rule.yaml", "batch axis 'dp' cannot be used",
                  "[dp, tp]", "[tp]"},
        CheckCase{"batch-axis-unknown.yaml", "batch axis 'dp' is not a mesh axis", "[dp]", "[tp]"},
        CheckCase{"mesh-size-zero.yaml", "mesh axis 'dp' has size 0", "dp: 0", "dp: 1"},
        // One axis too large (plan --format json aborted on bad_alloc), and a product that
        // overflows int64 (it passed check as "0 ranks" and the executor died of SIGFPE).
        CheckCase{"mesh-too-large.yaml", "the mesh (tp 1000000) has more than 65536 ranks", "tp: 1000000", "tp: 2"},
        CheckCase{"mesh-product-overflows.yaml", "(dp 4294967296, tp 4294967296) has more than 65536 ranks",
                  "dp: 4294967296\n  tp: 4294967296", "dp: 2\n  tp: 2"},
        CheckCase{"mode-not-allowed.yaml", "mode 'expert' is not allowed for kind 'attention'",
                  "[attention, moe]", "[moe]"},
        CheckCase{"mode-not-allowed-by-path.yaml", "not allowed for kind 'mlp'", "expert", "tensor"},
        CheckCase{"heads-not-divisible.yaml", "8 heads are not divisible by 3", "tp: 3", "tp: 4"},
        CheckCase{"kv-heads-not-replicable.yaml", "4 KV heads can be neither split nor replicated",
                  "tp: 6", "tp: 4"},
        CheckCase{"intermediate-not-divisible.yaml", "512 intermediate rows are not divisible by 3",
                  "tp: 3", "tp: 2"},
        CheckCase{"vocab-not-divisible.yaml", "1024 vocabulary rows are not divisible by 3",
                  "tp: 3", "tp: 2"},
        CheckCase{"experts-not-divisible.yaml", "8 experts are not divisible by 3", "ep: 3",
                  "ep: 2"},
        CheckCase{"encoder-heads-not-divisible.yaml", "4 encoder heads are not divisible by 8",
                  "tp: 8", "tp: 4"},
        CheckCase{"path-inside-encoder.yaml", "points inside the encoder 'vision_tower'",
                  "vision_tower.vision_model.encoder.layers.*.self_attn", "vision_tower"},
        CheckCase{"data-batch-not-divisible.yaml", "3 requests", "batch: 6", "batch: 8"},
        CheckCase{"batch-not-divisible.yaml", "workload.batch 6 is not divisible", "batch: 6",
                  "batch: 8"},
        CheckCase{"tied-layout-mismatch.yaml", "a tied tensor has one layout", "mode: replicate",
                  "mode: tensor\n    axes: [tp]"},
        CheckCase{"needs-axes.yaml", "mode 'tensor' needs axes", "mode: tensor",
                  "mode: tensor\n    axes: [tp]"},
        CheckCase{"unknown-key.yaml", "unknown key 'color'", "    color: red\n", ""},
        CheckCase{"unknown-model-type.yaml", "model_type 'gpt2' is not supported",
                  "configs/unknown-type.json", "configs/heads12-kv4.json"},
        CheckCase{"yaml-syntax-error.yaml", "YAML syntax error", "[2", "2"}),
    [](const auto& info) {
      std::string name = info.param.spec;
      name = name.substr(0, name.find('.'));
      for (char& c : name) {
        if (!isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      return name;
    });

TEST(SpecCheck, SchemaErrorsAreAllReported) {
  const Result r = check(kDir + "/schema-errors.yaml");
  std::vector<int> lines;
  for (const auto& d : r.diags.all()) lines.push_back(d.pos.line);
  EXPECT_EQ(lines, (std::vector<int>{4, 9, 11, 12, 14})) << render(r);
}

TEST(SpecCheck, FiveMistakesGiveFiveDiagnosticsOnTheirLines) {
  const Result r = check(kDir + "/five-mistakes.yaml");
  std::vector<int> lines;
  for (const auto& d : r.diags.all()) {
    EXPECT_EQ(d.severity, Severity::kError) << format_diagnostic(d);
    lines.push_back(d.pos.line);
  }
  EXPECT_EQ(lines, (std::vector<int>{9, 12, 16, 19, 21})) << render(r);
  EXPECT_EQ(r.outcome, CheckOutcome::kInvalid);
}

TEST(SpecCheck, RuleMatchingNothingIsAWarningOnly) {
  const Result r = check(kDir + "/rule-matches-nothing.yaml");
  EXPECT_EQ(r.outcome, CheckOutcome::kValid);
  ASSERT_EQ(r.diags.all().size(), 2u);
  for (const auto& d : r.diags.all()) EXPECT_EQ(d.severity, Severity::kWarning);
  EXPECT_EQ(r.diags.all()[0].pos.line, 7);
  EXPECT_EQ(r.diags.all()[1].pos.line, 10);
}

TEST(SpecCheck, UnreadableInputsAreIoErrors) {
  EXPECT_EQ(check(kDir + "/config-missing.yaml").outcome, CheckOutcome::kIoError);
  EXPECT_EQ(check(kDir + "/config-not-json.yaml").outcome, CheckOutcome::kIoError);
  EXPECT_EQ(check(kDir + "/no-such-spec.yaml").outcome, CheckOutcome::kIoError);
}

TEST(SpecCheck, ShippedSpecsAreValid) {
  int n = 0;
  for (const auto& dir : {"specs", "examples"}) {
    if (!fs::exists(dir)) continue;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.path().extension() != ".yaml") continue;
      const Result r = check(e.path().string());
      EXPECT_EQ(r.outcome, CheckOutcome::kValid) << e.path() << "\n" << render(r);
      EXPECT_TRUE(r.diags.all().empty()) << render(r);
      ++n;
    }
  }
  EXPECT_GE(n, 5);
}

}  // namespace
}  // namespace shardplan
