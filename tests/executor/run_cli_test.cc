// `executor run` end to end: the built binary, its report (text and JSON), the local launch of
// several ranks over Gloo with --verify, and its exit codes and messages.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "planner/sweep/hardware.h"
#include "tests/executor/spec_test_util.h"

namespace shardplan {
namespace {

using testing::SpecText;
using testing::suite_dir;
using testing::write_spec;

struct Result {
  int code = -1;
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs `[env] executor args` through the shell, capturing stdout and stderr.
Result run_executor(const std::string& args, const std::string& env = "") {
  const std::string out = (suite_dir() / "stdout.txt").string(), err = (suite_dir() / "stderr.txt").string();
  const std::string command = env + " " + SHARDPLAN_EXECUTOR + " " + args + " >" + out + " 2>" + err;
  const int status = std::system(command.c_str());
  Result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(RunCliTest, OneRankTextReport) {
  SpecText s;
  s.mesh = "one: 1";
  s.modules.clear();
  const Result r = run_executor("run --spec " + write_spec("cli_one", s));
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* line : {"requests: 4\n", "tokens: 32 input (8 per request), 16 output (4 per request)\n",
                           "duration: ", "output tokens/s: ", "time to first token (ms): mean ",
                           "time per output token (ms): mean "}) {
    EXPECT_TRUE(has(r.out, line)) << line << " not in:\n" << r.out;
  }
  EXPECT_FALSE(has(r.out, "verify")) << r.out;
}

TEST(RunCliTest, TwoLocalRanksVerifyAsJson) {
  if (!SHARDPLAN_HAVE_GLOO) GTEST_SKIP() << "this build has no Gloo, so no CPU communicator";
  SpecText s;  // tensor over tp: 2
  const Result r = run_executor("run --spec " + write_spec("cli_tp2", s) + " --verify --format json");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["world_size"], 2);
  EXPECT_EQ(j["requests"], 4);
  EXPECT_EQ(j["output_tokens"], 16);
  EXPECT_GT(j["duration_s"].get<double>(), 0.0);
  EXPECT_GT(j["output_tokens_per_s"].get<double>(), 0.0);
  for (const char* key : {"ttft_ms", "tpot_ms"}) {
    for (const char* stat : {"mean", "median", "p99"}) EXPECT_TRUE(j[key][stat].is_number()) << key << stat;
  }
  ASSERT_EQ(j["generated_token_ids"].size(), 4u);
  for (const auto& tokens : j["generated_token_ids"]) EXPECT_EQ(tokens.size(), 4u);
  ASSERT_EQ(j["weight_bytes_read"].size(), 2u);
  EXPECT_TRUE(j["verify"]["passed"].get<bool>()) << j["verify"].dump();
  EXPECT_TRUE(j["verify"]["tokens_identical"].get<bool>());
  EXPECT_LT(j["verify"]["max_abs_diff"].get<double>(), 1e-4);

  // The same tokens as one rank running the whole model.
  SpecText one = s;
  one.mesh = "one: 1";
  one.modules.clear();
  const Result u = run_executor("run --spec " + write_spec("cli_tp2_one", one) + " --format json");
  ASSERT_EQ(u.code, 0) << u.err;
  EXPECT_EQ(nlohmann::json::parse(u.out)["generated_token_ids"], j["generated_token_ids"]);
}

TEST(RunCliTest, MixtralExpertAllToAllOverGlooWithProfile) {
  if (!SHARDPLAN_HAVE_GLOO) GTEST_SKIP() << "this build has no Gloo, so no CPU communicator";
  // Attention data over ep, experts over ep: the plan's all_to_all dispatch / combine over Gloo.
  SpecText s;
  s.config = "tiny-mixtral.json";
  s.mesh = "ep: 2";
  s.batch = 8;
  s.modules =
      "  - kind: [embedding, attention, lm_head]\n    mode: data\n    axes: [ep]\n"
      "  - kind: moe\n    mode: expert\n    axes: [ep]\n";
  const Result r = run_executor("run --spec " + write_spec("cli_mixtral_ep2", s) + " --verify --profile --format json");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["verify"]["passed"].get<bool>()) << j["verify"].dump();
  EXPECT_TRUE(j["verify"]["tokens_identical"].get<bool>());
  for (const char* kind : {"embedding", "attention", "moe", "lm_head", "collectives"}) {
    EXPECT_TRUE(j["time_by_kind_s"][kind].is_number()) << kind << " in " << j["time_by_kind_s"].dump();
  }
  EXPECT_FALSE(j["time_by_kind_s"].contains("mlp"));
  const Result text = run_executor("run --spec " + write_spec("cli_mixtral_ep2", s) + " --profile");
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_TRUE(has(text.out, "time by module kind (s, mean over ranks): embedding ")) << text.out;
  // Without --profile nothing is timed inside a step, and nothing is reported by kind.
  const Result plain = run_executor("run --spec " + write_spec("cli_mixtral_ep2", s) + " --format json");
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_FALSE(nlohmann::json::parse(plain.out).contains("time_by_kind_s")) << plain.out;
}

TEST(RunCliTest, ExitCodesAndMessages) {
  SpecText tp3;
  tp3.mesh = "tp: 3";
  const Result invalid = run_executor("run --spec " + write_spec("cli_tp3", tp3));
  EXPECT_EQ(invalid.code, 1) << invalid.err;
  EXPECT_TRUE(has(invalid.err, "cli_tp3.yaml:")) << invalid.err;
  EXPECT_TRUE(has(invalid.err, ": error: ")) << invalid.err;

  const Result missing = run_executor("run --spec " + (suite_dir() / "missing.yaml").string());
  EXPECT_EQ(missing.code, 2);

  // tiny-whisper's decoder has 64 positions: 60 + 8 do not fit, which the spec check says
  // before any rank starts (an invalid spec, exit 1).
  SpecText whisper;
  whisper.config = "tiny-whisper.json";
  whisper.modules.clear();
  whisper.prompt_tokens = 60;
  whisper.new_tokens = 8;
  const Result positions = run_executor("run --spec " + write_spec("cli_whisper_long", whisper));
  EXPECT_EQ(positions.code, 1);
  EXPECT_TRUE(has(positions.err, "prompt_tokens 60 + new_tokens 8 = 68 positions, more than the model's 64"))
      << positions.err;

  SpecText half;
  half.dtype = "float16";
  const Result fp16 = run_executor("run --spec " + write_spec("cli_fp16", half));
  EXPECT_EQ(fp16.code, 2);
  EXPECT_TRUE(has(fp16.err, "float16 on --device cpu")) << fp16.err;

  SpecText s;
  const std::string spec = write_spec("cli_usage", s);
  EXPECT_EQ(run_executor("run --spec " + spec + " --format yaml").code, 2);
  EXPECT_EQ(run_executor("run").code, 2);
  const Result world = run_executor("run --spec " + spec,
                                    "RANK=0 WORLD_SIZE=3 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29555");
  EXPECT_EQ(world.code, 2);
  EXPECT_TRUE(has(world.err, "WORLD_SIZE 3 from the launcher, but the spec's mesh has world size 2")) << world.err;
}

// One rank of two started under a launcher's variables, its peer never started: the run's
// flags reach the communicator, the missing rank is named and the run exits 3, not 1 or 2.
TEST(RunCliTest, MissingPeerIsNamedAndExitsThree) {
  if (!SHARDPLAN_HAVE_GLOO) GTEST_SKIP() << "this build has no Gloo, so no CPU communicator";
  SpecText s;  // tensor over tp: 2
  const std::string spec = write_spec("cli_missing_peer", s);
  // A port nobody listens on: the kernel's pick for port 0, released.
  const int socket_fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(::bind(socket_fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::getsockname(socket_fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  ::close(socket_fd);
  const std::string env = "RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
                          std::to_string(ntohs(address.sin_port));
  const Result r = run_executor("run --spec " + spec + " --rendezvous-timeout 2", env);
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_TRUE(has(r.err, "rank 1 of 2 has not joined within 2 s (--rendezvous-timeout)")) << r.err;
  for (const char* bad : {"--rendezvous-timeout 0", "--peer-timeout -1", "--collective-timeout x"}) {
    const Result usage = run_executor("run --spec " + spec + " " + bad);
    EXPECT_EQ(usage.code, 2) << bad << "\n" << usage.err;
  }
}

// A ragged batch through --requests: prompts of 3 to 300 tokens and max_tokens of 1 to 64 in one
// batch (left-padded, the padding masked out; finished requests leaving it) give each request
// exactly the tokens it gets alone; on one rank, tensor-parallel over 2 and with the requests
// split over a dp axis of 2.
TEST(RunCliTest, RaggedBatchGivesEachRequestItsOwnTokens) {
  const std::vector<int> lengths{3, 17, 300, 64, 150, 9}, max_tokens{1, 64, 7, 33, 12, 50};
  std::vector<std::string> lines;
  uint64_t state = 12345;
  for (size_t i = 0; i < lengths.size(); ++i) {
    nlohmann::json ids = nlohmann::json::array();
    for (int t = 0; t < lengths[i]; ++t) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      ids.push_back((state >> 33) % 1024);  // tiny-llama's vocabulary
    }
    lines.push_back(nlohmann::json{{"prompt_token_ids", ids}, {"max_tokens", max_tokens[i]}}.dump());
  }
  std::string report;  // the last run's report
  const auto tokens_of = [&](const std::string& spec, const std::vector<size_t>& which, const std::string& name) {
    std::string text;
    for (size_t i : which) text += lines[i] + "\n";
    const std::string requests = (suite_dir() / (name + ".jsonl")).string(), out = (suite_dir() / (name + ".out")).string();
    std::ofstream(requests) << text;
    const Result r = run_executor("run --spec " + spec + " --requests " + requests + " --output " + out);
    EXPECT_EQ(r.code, 0) << r.err;
    report = r.out;
    std::vector<std::vector<int64_t>> tokens;
    std::ifstream in(out);
    for (std::string line; std::getline(in, line);) {
      const nlohmann::json j = nlohmann::json::parse(line);
      EXPECT_EQ(j["finish_reason"], "length");  // no tokenizer, no end-of-sequence id: max_tokens
      tokens.push_back(j["token_ids"].get<std::vector<int64_t>>());
    }
    return tokens;
  };
  SpecText one;
  one.mesh = "one: 1";
  one.modules.clear();
  const std::string one_spec = write_spec("cli_ragged_one", one);
  std::vector<std::vector<int64_t>> alone;
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto t = tokens_of(one_spec, {i}, "ragged_alone_" + std::to_string(i));
    ASSERT_EQ(t.size(), 1u);
    ASSERT_EQ(t[0].size(), static_cast<size_t>(max_tokens[i]));
    alone.push_back(t[0]);
  }
  std::vector<std::pair<std::string, std::string>> specs{{"one rank", one_spec}};
  if (SHARDPLAN_HAVE_GLOO) {
    SpecText tp;  // tensor over tp: 2
    SpecText dp;
    dp.mesh = "dp: 2";
    dp.batch_axes = "[dp]";
    dp.modules.clear();
    specs.emplace_back("tp 2", write_spec("cli_ragged_tp2", tp));
    specs.emplace_back("dp 2", write_spec("cli_ragged_dp2", dp));
  }
  for (size_t k = 0; k < specs.size(); ++k) {
    const auto batch = tokens_of(specs[k].second, {0, 1, 2, 3, 4, 5}, "ragged_batch_" + std::to_string(k));
    ASSERT_EQ(batch.size(), lines.size()) << specs[k].first;
    for (size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(batch[i], alone[i]) << specs[k].first << ": request " << i;
    // Each request leaves the batch when its max_tokens is reached (1, 7, 12, 33, 50 of 64),
    // where every rank computes every request; split over dp, the ranks' batches stay whole.
    if (specs[k].first == "dp 2") {
      EXPECT_FALSE(has(report, "decode batch:")) << report;
    } else {
      EXPECT_TRUE(has(report, "decode batch: 5, 4, 3, 2, 1 (finished requests leave it)\n")) << specs[k].first << "\n"
                                                                                             << report;
    }
  }
}

// `executor calibrate` writes a hardware file that planner sweep's loader reads, with the measured
// figures in it and the unmeasured ones from --base.
TEST(CalibrateCliTest, WritesAHardwareFileTheSweepReads) {
  const std::string file = (suite_dir() / "calibrated.yaml").string();
  const Result r = run_executor("calibrate --device cpu --quick --base h100 -o " + file);
  ASSERT_EQ(r.code, 0) << r.err;
  const Hardware measured = load_hardware(file), base = load_hardware("h100");
  EXPECT_GT(measured.memory_GBps, 0);
  EXPECT_NE(measured.memory_GBps, base.memory_GBps);
  EXPECT_NE(measured.bf16_tflops, base.bf16_tflops);
  EXPECT_EQ(measured.link_GBps, base.link_GBps);
  EXPECT_TRUE(has(slurp(file), "gemm:"));
  const Result json = run_executor("calibrate --device cpu --quick --format json");
  ASSERT_EQ(json.code, 0) << json.err;
  const nlohmann::json j = nlohmann::json::parse(json.out);
  EXPECT_GT(j["matmul_tflops"].get<double>(), 0);
  EXPECT_EQ(j["gemm"].size(), 8u);
  EXPECT_GT(j["eager_kernel_us"].get<double>(), 0);
  // The file the sweep reads has the measured eager launch cost and the GEMM classes.
  EXPECT_GT(measured.eager_kernel_us, 0);
  EXPECT_EQ(measured.gemm.size(), 8u);
  EXPECT_EQ(run_executor("calibrate --device cpu --quick --base nowhere").code, 2);
}

// `calibrate --ranks 3` times every collective over 2 and 3 local ranks (Gloo here): the file
// the sweep reads has a table per (op, ranks), two message sizes each, which collective_seconds
// reads back (predict's use of it: SweepTest.PredictionUsesTheCalibratedCollectives).
TEST(CalibrateCliTest, TimesTheCollectivesOverLocalRanks) {
  if (!SHARDPLAN_HAVE_GLOO) GTEST_SKIP() << "this build has no Gloo communicator";
  const std::string file = (suite_dir() / "calibrated-ranks.yaml").string();
  const Result r = run_executor("calibrate --device cpu --quick --ranks 3 -o " + file);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(has(r.err, "calibrate: collectives over 3 ranks")) << r.err;
  const Hardware h = load_hardware(file);
  ASSERT_EQ(h.collectives.size(), 6u) << slurp(file);
  for (const Hardware::CollectiveTimes& t : h.collectives) {
    SCOPED_TRACE(t.op + " over " + std::to_string(t.ranks));
    EXPECT_TRUE(t.ranks == 2 || t.ranks == 3);
    ASSERT_EQ(t.points.size(), 2u);
    EXPECT_GT(t.points[0].second, 0);
    // The first message is 8 KiB on each rank, in bytes sent as the planner counts them
    // (all_reduce over 2: 2 (g - 1) / g x 8 KiB).
    if (t.op == "all_reduce" && t.ranks == 2) {
      EXPECT_EQ(t.points[0].first, 8192);
    }
    const double seconds = collective_seconds(h, t.op, t.ranks, static_cast<int64_t>(t.points[0].first));
    EXPECT_DOUBLE_EQ(seconds, t.points[0].second * 1e-6);
  }
  // Inside another launcher's job (RANK, WORLD_SIZE set) calibrate measures as it does outside.
  const Result in_job = run_executor("calibrate --device cpu --quick --format json",
                                     "RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29999");
  EXPECT_EQ(in_job.code, 0) << in_job.err;
}

// planner sweep's specs of tiny-llama on 2 ranks, run by `executor sweep` over Gloo: every plan
// runs (random weights made once), and the results name the prediction and the measurement.
TEST(SweepCliTest, RunsPlannerSweepsSpecsAndComparesWithThePrediction) {
  if (!SHARDPLAN_HAVE_GLOO) GTEST_SKIP() << "no Gloo";
  const std::string dir = (suite_dir() / "sweep_tiny").string();
  std::filesystem::remove_all(dir);
  const std::string planner = std::string(SHARDPLAN_PLANNER) + " sweep --config " + testing::kConfigDir +
                              "tiny-llama.json --world 2 --batch 2 --prompt-tokens 8 --new-tokens 4 --dtype float32 "
                              "--top 3 -o " + dir + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(planner.c_str()), 0);
  const Result r = run_executor("sweep " + dir + " --top 3");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(has(r.err, "executor sweep: 3/3 rank-03"));
  const nlohmann::json j = nlohmann::json::parse(slurp(dir + "/measured/measured.json"));
  ASSERT_EQ(j["plans"].size(), 3u);
  for (const auto& p : j["plans"]) {
    ASSERT_TRUE(p["ran"].get<bool>()) << p.dump();
    EXPECT_GT(p["measured"]["tokens_per_s"].get<double>(), 0);
    EXPECT_GT(p["measured"]["peak_memory_bytes"].get<int64_t>(), 0);
    EXPECT_GT(p["predicted"]["tokens_per_s"].get<double>(), 0);
  }
  EXPECT_EQ(j["accuracy"]["points"].get<int>(), 3);
  EXPECT_TRUE(has(slurp(dir + "/measured/predicted-vs-measured.svg"), "<svg"));
  EXPECT_TRUE(has(slurp(dir + "/measured/pareto-measured.svg"), "<svg"));
  EXPECT_TRUE(has(slurp(dir + "/measured/measured.txt"), "Spearman"));
  // The sweep's own specs are not modified (the runs use copies with the checkpoint added).
  EXPECT_FALSE(has(slurp(dir + "/rank-01.yaml"), "checkpoint"));
  EXPECT_TRUE(has(slurp(dir + "/measured/rank-01.yaml"), "checkpoint"));
  // A folder without planner sweep's output is a usage error.
  const Result none = run_executor("sweep " + (suite_dir() / "no_such_sweep").string());
  EXPECT_EQ(none.code, 2);
  EXPECT_TRUE(has(none.err, "has no sweep.json"));
}

}  // namespace
}  // namespace shardplan
