// `executor make-checkpoint`: exit codes, "executor: error:" messages, and a checkpoint that the
// reader accepts and that matches its config.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "executor/weights/checkpoint_check.h"
#include "executor/weights/safetensors.h"
#include "models/graph/registry.h"
#include "tests/executor/weights_test_util.h"

namespace shardplan {
namespace {

using testing::read_bytes;
using testing::TempDir;

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs the built executor with `args` (shell words), capturing stdout and stderr.
Result run_executor(const TempDir& dir, const std::string& args) {
  const std::string out = dir / "stdout.txt", err = dir / "stderr.txt";
  const std::string command =
      std::string(SHARDPLAN_BINARY_DIR) + "/executor/executor " + args + " >" + out + " 2>" + err;
  const int status = std::system(command.c_str());
  Result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_bytes(out);
  r.err = read_bytes(err);
  return r;
}

const std::string kTinyLlama = std::string(SHARDPLAN_SOURCE_DIR) + "/models/configs/tiny-llama.json";

TEST(MakeCheckpointCliTest, WritesAMatchingCheckpoint) {
  TempDir dir;
  const Result r = run_executor(dir, "make-checkpoint --config " + kTinyLlama + " --out " + (dir / "ckpt") +
                                         " --seed 3 --dtype bfloat16 --max-shard-size 1MiB");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("bfloat16"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("model.safetensors.index.json"), std::string::npos) << r.out;
  Checkpoint ckpt = Checkpoint::open(dir / "ckpt");
  EXPECT_GT(ckpt.files().size(), 1u);
  EXPECT_EQ(ckpt.info("model.embed_tokens.weight").dtype, SafetensorsDType::kBF16);
  EXPECT_NO_THROW(check_checkpoint_matches(ckpt, load_model_graph(kTinyLlama)));

  // Same seed, same bytes; the config's torch_dtype (float32) when --dtype is left out.
  const Result again = run_executor(dir, "make-checkpoint --config " + kTinyLlama + " --out " + (dir / "again") +
                                             " --seed 3 --dtype bfloat16 --max-shard-size 1048576");
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(read_bytes(dir / "ckpt/model-00001-of-00002.safetensors"),
            read_bytes(dir / "again/model-00001-of-00002.safetensors"));
  const Result f32 = run_executor(dir, "make-checkpoint --config " + kTinyLlama + " --out " + (dir / "f32"));
  ASSERT_EQ(f32.code, 0) << f32.err;
  EXPECT_EQ(Checkpoint::open(dir / "f32").info("lm_head.weight").dtype, SafetensorsDType::kF32);
}

TEST(MakeCheckpointCliTest, UsageAndIoErrorsExitWithTwo) {
  TempDir dir;
  const std::string out = " --out " + (dir / "ckpt");
  const std::pair<std::string, std::string> cases[] = {
      {"", "subcommand"},
      {"make-checkpoint" + out, "--config"},
      {"make-checkpoint --config " + kTinyLlama, "--out"},
      {"make-checkpoint --config " + kTinyLlama + out + " --dtype int8", "int8"},
      {"make-checkpoint --config " + kTinyLlama + out + " --seed -1", "--seed"},
      {"make-checkpoint --config " + kTinyLlama + out + " --max-shard-size 0", "--max-shard-size '0'"},
      {"make-checkpoint --config " + kTinyLlama + out + " --max-shard-size lots", "--max-shard-size 'lots'"},
      {"make-checkpoint --config " + (dir / "missing.json") + out, "missing.json"},
      {"make-checkpoint --config " + kTinyLlama + " --out " + (dir / "stderr.txt/sub"), "cannot create output directory"},
      {"frobnicate", "frobnicate"},
  };
  for (const auto& [args, needle] : cases) {
    const Result r = run_executor(dir, args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.err;
    EXPECT_EQ(r.err.rfind("executor: error: ", 0), 0u) << args << "\n" << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << args << "\n" << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "ckpt"));
}

// tiny-llama.json with `changes` applied, written to `path`.
std::string write_config(const std::string& path, const nlohmann::json& changes) {
  std::ifstream in(kTinyLlama);
  nlohmann::json config = nlohmann::json::parse(in);
  config.update(changes);
  std::ofstream(path) << config.dump(2);
  return path;
}

// A checkpoint larger than the free space (16 TiB of embeddings) is refused before any byte or
// folder is written, naming both sizes.
TEST(MakeCheckpointCliTest, RefusesACheckpointLargerThanTheFreeSpace) {
  TempDir dir;
  const std::string config = write_config(dir / "huge.json", {{"vocab_size", 1 << 24}, {"hidden_size", 1 << 18}});
  const Result r = run_executor(dir, "make-checkpoint --config " + config + " --out " + (dir / "ckpt/sub"));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("GiB free; the checkpoint needs "), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "ckpt"));
}

// SIGINT and SIGTERM during the write (SIGHUP takes the same path): exit 128 + the signal, and
// neither a .tmp file nor a partial checkpoint is left behind.
TEST(MakeCheckpointCliTest, InterruptRemovesTheTemporaryFiles) {
  TempDir dir;
  // ~1.5 GB of float32: seconds of writing, so the signal lands in the middle.
  const std::string config = write_config(
      dir / "big.json", {{"hidden_size", 2048}, {"intermediate_size", 8192}, {"vocab_size", 32000}});
  for (const int sig : {SIGINT, SIGTERM}) {
    const std::string out = dir / ("ckpt" + std::to_string(sig));
    const std::string executable = std::string(SHARDPLAN_BINARY_DIR) + "/executor/executor";
    const std::string err_path = dir / "err.txt";
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      std::freopen(err_path.c_str(), "w", stderr);
      ::execl(executable.c_str(), executable.c_str(), "make-checkpoint", "--config", config.c_str(), "--out",
              out.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!std::filesystem::exists(out + "/model.safetensors.tmp") && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_TRUE(std::filesystem::exists(out + "/model.safetensors.tmp")) << "the write never started";
    ::kill(pid, sig);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 128 + sig) << status << "\n" << read_bytes(err_path);
    EXPECT_NE(read_bytes(err_path).find("executor: error: interrupted (signal " + std::to_string(sig) + ")"),
              std::string::npos)
        << read_bytes(err_path);
    std::vector<std::string> left;
    for (const auto& entry : std::filesystem::directory_iterator(out)) left.push_back(entry.path().filename());
    EXPECT_TRUE(left.empty()) << "left behind: " << left.front();
  }
}

TEST(MakeCheckpointCliTest, HelpExitsWithZero) {
  TempDir dir;
  const Result r = run_executor(dir, "make-checkpoint --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--max-shard-size"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace shardplan
