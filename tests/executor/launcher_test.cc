// The launch environment (RANK, WORLD_SIZE, ... checked in-process) and the local launcher
// (run_local_ranks, run in a forked child whose output is captured, over comm_test_rank ranks).
#include "executor/comm/launcher.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "tests/executor/comm_test_util.h"

namespace shardplan::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Sets (or, for nullopt, unsets) variables for one test and restores them afterwards.
class ScopedEnv {
 public:
  explicit ScopedEnv(const std::map<std::string, std::optional<std::string>>& values) {
    for (const char* name :
         {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_USE_AGENT_STORE"}) {
      const char* old = std::getenv(name);
      saved_[name] = old != nullptr ? std::optional<std::string>(old) : std::nullopt;
      ::unsetenv(name);
    }
    for (const auto& value : values) {
      if (saved_.count(value.first) == 0) {
        const char* old = std::getenv(value.first.c_str());
        saved_[value.first] = old != nullptr ? std::optional<std::string>(old) : std::nullopt;
      }
      if (value.second) {
        ::setenv(value.first.c_str(), value.second->c_str(), 1);
      } else {
        ::unsetenv(value.first.c_str());
      }
    }
  }
  ~ScopedEnv() {
    for (const auto& value : saved_) {
      if (value.second) {
        ::setenv(value.first.c_str(), value.second->c_str(), 1);
      } else {
        ::unsetenv(value.first.c_str());
      }
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

const std::map<std::string, std::optional<std::string>> kValid = {
    {"RANK", "2"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "29501"}};

std::map<std::string, std::optional<std::string>> valid_with(const std::string& name,
                                                             std::optional<std::string> value) {
  std::map<std::string, std::optional<std::string>> env = kValid;
  env[name] = std::move(value);
  return env;
}

TEST(LaunchEnv, NoVariablesMeansNoLauncher) {
  ScopedEnv env({});
  EXPECT_FALSE(launch_env_from_environment().has_value());
}

TEST(LaunchEnv, ReadsAValidEnvironment) {
  {
    ScopedEnv env(kValid);
    const std::optional<LaunchEnv> launch = launch_env_from_environment();
    ASSERT_TRUE(launch.has_value());
    EXPECT_EQ(launch->rank, 2);
    EXPECT_EQ(launch->world_size, 4);
    EXPECT_EQ(launch->local_rank, 1);
    EXPECT_EQ(launch->master_addr, "10.0.0.1");
    EXPECT_EQ(launch->master_port, 29501);
    EXPECT_FALSE(launch->launcher_hosts_store);
  }
  {
    std::map<std::string, std::optional<std::string>> values = valid_with("LOCAL_RANK", std::nullopt);
    values["TORCHELASTIC_USE_AGENT_STORE"] = "True";
    ScopedEnv env(values);
    const std::optional<LaunchEnv> launch = launch_env_from_environment();
    ASSERT_TRUE(launch.has_value());
    EXPECT_EQ(launch->local_rank, 2);  // defaults to RANK
    EXPECT_TRUE(launch->launcher_hosts_store);
  }
}

TEST(LaunchEnv, RejectsBadValuesNamingTheVariable) {
  const std::vector<std::pair<std::map<std::string, std::optional<std::string>>, std::string>> cases = {
      {valid_with("RANK", "4"), "RANK=4 is not in [0, WORLD_SIZE=4)"},
      {valid_with("RANK", "-1"), "RANK=-1 is not in [0, WORLD_SIZE=4)"},
      {valid_with("RANK", "abc"), "RANK='abc' is not an integer"},
      {valid_with("RANK", "1.5"), "RANK='1.5' is not an integer"},
      {valid_with("RANK", ""), "RANK='' is not an integer"},
      {valid_with("RANK", "99999999999999999999"), "RANK=99999999999999999999 is out of range"},
      {valid_with("WORLD_SIZE", "0"), "WORLD_SIZE=0 is out of range [1, "},
      {valid_with("WORLD_SIZE", " 4"), "WORLD_SIZE=' 4' is not an integer"},
      {valid_with("WORLD_SIZE", std::nullopt), "RANK is set but WORLD_SIZE is not"},
      {valid_with("RANK", std::nullopt), "WORLD_SIZE is set but RANK is not"},
      {valid_with("LOCAL_RANK", "-2"), "LOCAL_RANK=-2 is out of range [0, "},
      {valid_with("MASTER_ADDR", std::nullopt), "MASTER_ADDR is not set"},
      {valid_with("MASTER_ADDR", ""), "MASTER_ADDR is not set"},
      {valid_with("MASTER_PORT", "70000"), "MASTER_PORT=70000 is out of range [1, 65535]"},
      {valid_with("MASTER_PORT", "http"), "MASTER_PORT='http' is not an integer"},
      {valid_with("MASTER_PORT", std::nullopt), "MASTER_PORT is not set"},
  };
  for (const auto& c : cases) {
    ScopedEnv env(c.first);
    try {
      launch_env_from_environment();
      ADD_FAILURE() << "no error; expected: " << c.second;
    } catch (const LaunchError& e) {
      EXPECT_NE(std::string(e.what()).find(c.second), std::string::npos) << e.what() << "\nexpected: " << c.second;
    }
  }
}

TEST(LaunchEnv, FindFreePortGivesABindablePort) {
  const int port = find_free_port();
  EXPECT_GT(port, 0);
  EXPECT_LE(port, 65535);
  EXPECT_THROW(find_free_port("not-an-address"), LaunchError);
}

LocalRanksOptions rank_program(milliseconds grace = milliseconds(5000)) {
  LocalRanksOptions options;
  options.executable = comm_test_rank_path();
  options.kill_grace = grace;
  return options;
}

bool exited_with(const ChildResult& result, int code) {
  return result.finished && WIFEXITED(result.status) && WEXITSTATUS(result.status) == code;
}

TEST(LocalRanks, Rank0StdoutPassesThroughAndTheRestIsPrefixed) {
  const ChildResult result = run_in_child(
      [] {
        ::setenv("NCCL_NVLS_ENABLE", "1", 1);  // forced back to 0
        ::setenv("TORCH_SYMM_MEM_DISABLE_MULTICAST", "0", 1);
        ::unsetenv("NVSHMEM_DISABLE_NVLS");
        ::setenv("SHARDPLAN_TEST_MARK", "hello", 1);
        ::setenv("TORCHELASTIC_USE_AGENT_STORE", "True", 1);  // not for our own ranks
        for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"}) ::unsetenv(name);
        return run_local_ranks(3, {"comm_test_rank", "print_env"}, rank_program());
      },
      seconds(30));
  ASSERT_TRUE(exited_with(result, 0)) << result.out << result.err;
  const std::string forced =
      " NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 SHARDPLAN_TEST_MARK=hello "
      "TORCHELASTIC_USE_AGENT_STORE=<unset>\n";
  // stdout holds rank 0's line alone, untouched.
  EXPECT_EQ(result.out.rfind("rank 0 of 3 local 0 at 127.0.0.1:", 0), 0u) << result.out;
  EXPECT_NE(result.out.find(forced), std::string::npos) << result.out;
  EXPECT_EQ(std::count(result.out.begin(), result.out.end(), '\n'), 1) << result.out;
  for (int r : {1, 2}) {
    const std::string prefix = "[rank " + std::to_string(r) + "] ";
    EXPECT_NE(
        result.err.find(prefix + "rank " + std::to_string(r) + " of 3 local " + std::to_string(r) + " at 127.0.0.1:"),
        std::string::npos)
        << result.err;
  }
  for (int r : {0, 1, 2}) {
    const std::string prefix = "[rank " + std::to_string(r) + "] ";
    EXPECT_NE(result.err.find(prefix + "diagnostic line from rank " + std::to_string(r) + "\n"), std::string::npos)
        << result.err;
    EXPECT_NE(result.err.find(prefix + "partial line without newline\n"), std::string::npos) << result.err;
  }
}

TEST(LocalRanks, FailedRankStopsTheOthersAndGivesItsExitCode) {
  const ChildResult result = run_in_child(
      [] {
        return run_local_ranks(3, {"comm_test_rank", "fail", "1", "7"}, rank_program());
      },
      seconds(30));
  EXPECT_TRUE(exited_with(result, 7)) << result.status << "\n" << result.err;
  EXPECT_NE(result.err.find("rank 1 failed (exit code 7)"), std::string::npos) << result.err;
  for (int r : {0, 2}) {
    EXPECT_NE(result.err.find("rank " + std::to_string(r) + " stopped (signal 15, SIGTERM)"), std::string::npos)
        << result.err;
  }
  EXPECT_LT(result.seconds, 10.0) << "the sleeping ranks were not stopped";
}

TEST(LocalRanks, KilledRankIsReportedWithItsSignal) {
  const ChildResult result = run_in_child(
      [] {
        return run_local_ranks(4, {"comm_test_rank", "fail", "2", "kill"}, rank_program());
      },
      seconds(30));
  // Not 1 (an invalid spec): a rank that dies is a fault of the run (kExitRunFault).
  EXPECT_TRUE(exited_with(result, 3)) << result.status << "\n" << result.err;
  EXPECT_NE(result.err.find("rank 2 failed (signal 9, SIGKILL)"), std::string::npos) << result.err;
  EXPECT_LT(result.seconds, 10.0);
}

TEST(LocalRanks, RanksIgnoringSigtermAreKilledAfterTheGrace) {
  const ChildResult result = run_in_child(
      [] {
        return run_local_ranks(3, {"comm_test_rank", "fail", "0", "3", "ignore_term"},
                               rank_program(milliseconds(1500)));
      },
      seconds(30));
  EXPECT_TRUE(exited_with(result, 3)) << result.status << "\n" << result.err;
  EXPECT_NE(result.err.find("rank 0 failed (exit code 3)"), std::string::npos) << result.err;
  for (int r : {1, 2}) {
    EXPECT_NE(result.err.find("rank " + std::to_string(r) + " stopped (signal 9, SIGKILL)"), std::string::npos)
        << result.err;
  }
  EXPECT_GE(result.seconds, 1.5 + 1.5);  // the victim's 1.5 s, then the grace ...
  EXPECT_LT(result.seconds, 12.0);       // ... and then SIGKILL, long before the ranks' 120 s sleep
}

// An interrupt of the launcher (`sig`) stops every rank with `rank_sig` (`rank_name`); it returns
// 128 + sig once they are gone.
void expect_interrupt_stops_the_ranks(int sig, const std::string& name, int rank_sig, const std::string& rank_name) {
  std::vector<int> rank_pids;
  const ChildResult result = run_in_child(
      [] {
        return run_local_ranks(3, {"comm_test_rank", "sleep"}, rank_program());
      },
      seconds(30),
      [&](pid_t launcher, const std::string& err_path) {
        const Clock::time_point deadline = Clock::now() + seconds(20);
        const std::regex pid_line("sleeping pid ([0-9]+)");
        while (Clock::now() < deadline) {
          const std::string err = read_text(err_path);
          rank_pids.clear();
          for (std::sregex_iterator it(err.begin(), err.end(), pid_line), end; it != end; ++it) {
            rank_pids.push_back(std::stoi((*it)[1]));
          }
          if (rank_pids.size() == 3) break;
          std::this_thread::sleep_for(milliseconds(20));
        }
        ::kill(launcher, sig);
      });
  ASSERT_EQ(rank_pids.size(), 3u) << result.err;
  EXPECT_TRUE(exited_with(result, 128 + sig)) << result.status << "\n" << result.err;
  EXPECT_NE(result.err.find("interrupted (signal " + std::to_string(sig) + ", " + name + ")"), std::string::npos)
      << result.err;
  EXPECT_LT(result.seconds, 10.0);
  for (int r = 0; r < 3; ++r) {
    EXPECT_NE(result.err.find("rank " + std::to_string(r) + " stopped (signal " + std::to_string(rank_sig) + ", " +
                              rank_name + ")"),
              std::string::npos)
        << result.err;
  }
  for (int pid : rank_pids) {
    errno = 0;
    EXPECT_EQ(::kill(pid, 0), -1) << "rank pid " << pid << " still exists";
    EXPECT_EQ(errno, ESRCH);
  }
}

TEST(LocalRanks, ForwardsSigintToTheRanks) { expect_interrupt_stops_the_ranks(SIGINT, "SIGINT", SIGINT, "SIGINT"); }

// A closed terminal (SIGHUP) stops the run as SIGTERM does, with no rank left behind.
TEST(LocalRanks, HangUpStopsTheRanksLikeSigterm) {
  expect_interrupt_stops_the_ranks(SIGHUP, "SIGHUP", SIGTERM, "SIGTERM");
}

TEST(LocalRanks, RunLongerThanTheTimeoutIsStopped) {
  const ChildResult result = run_in_child(
      [] {
        LocalRanksOptions options = rank_program();
        options.timeout = milliseconds(1500);
        return run_local_ranks(2, {"comm_test_rank", "sleep"}, options);
      },
      seconds(30));
  EXPECT_TRUE(exited_with(result, 3)) << result.status << "\n" << result.err;
  EXPECT_NE(result.err.find("the run exceeded its time limit of 1500 ms"), std::string::npos) << result.err;
  EXPECT_LT(result.seconds, 10.0);
}

TEST(LocalRanks, MissingExecutableFailsClearly) {
  const ChildResult result = run_in_child(
      [] {
        LocalRanksOptions options;
        options.executable = "/nonexistent/shardplan-rank";
        return run_local_ranks(2, {"x"}, options);
      },
      seconds(30));
  EXPECT_TRUE(exited_with(result, 127)) << result.status << "\n" << result.err;
  EXPECT_NE(result.err.find("cannot execute /nonexistent/shardplan-rank"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("failed (exit code 127)"), std::string::npos) << result.err;
}

TEST(LocalRanks, RejectsAZeroWorldSize) { EXPECT_THROW(run_local_ranks(0, {"x"}, rank_program()), LaunchError); }

// The launcher and the Gloo communicator together: 4 ranks, subgroups of {dp: 2, tp: 2}.
TEST(LocalRanks, RunsCommunicatorRanksEndToEnd) {
#ifndef SHARDPLAN_WITH_GLOO
  GTEST_SKIP() << "this build has no Gloo communicator";
#endif
  const ChildResult result = run_in_child(
      [] {
        for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"}) ::unsetenv(name);
        return run_local_ranks(4, {"comm_test_rank", "subgroups"}, rank_program());
      },
      seconds(45));
  ASSERT_TRUE(exited_with(result, 0)) << result.status << "\n" << result.out << result.err;
  EXPECT_NE(result.out.find("rank 0: subgroups ok\n"), std::string::npos) << result.out;
  for (int r : {1, 2, 3}) {
    EXPECT_NE(result.err.find("[rank " + std::to_string(r) + "] rank " + std::to_string(r) + ": subgroups ok\n"),
              std::string::npos)
        << result.err;
  }
}

}  // namespace
}  // namespace shardplan::testing
