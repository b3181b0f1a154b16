// `executor make-checkpoint`: exit codes, "executor: error:" messages, and a checkpoint that the
// reader accepts and that matches its config.
#include <sys/wait.h>

#include <cstdlib>

#include <gtest/gtest.h>

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

TEST(MakeCheckpointCliTest, HelpExitsWithZero) {
  TempDir dir;
  const Result r = run_executor(dir, "make-checkpoint --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--max-shard-size"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace shardplan
