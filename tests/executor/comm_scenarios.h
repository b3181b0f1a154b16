// The scenarios of comm_test_rank run as real processes, and what every rank must then print:
// shared by the Gloo tests (comm_test.cc) and the NCCL ones (comm_gpu_test.cc).
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "tests/executor/comm_test_util.h"

namespace shardplan::testing {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Runs SCENARIO on `world_size` ranks (at most `limit`); every rank must print "rank R: SCENARIO ok" and exit 0.
inline void expect_scenario_passes(int world_size, const std::string& scenario,
                                   const std::map<std::string, std::string>& env = {}, seconds limit = seconds(45)) {
  RankProcesses ranks(world_size, {scenario}, env);
  ASSERT_TRUE(ranks.wait(limit)) << "ranks still running after " << limit.count() << " s\n" << ranks.describe();
  for (int r = 0; r < world_size; ++r) {
    EXPECT_TRUE(WIFEXITED(ranks.rank(r).status) && WEXITSTATUS(ranks.rank(r).status) == 0) << "rank " << r << "\n"
                                                                                           << ranks.describe();
    EXPECT_NE(ranks.out(r).find("rank " + std::to_string(r) + ": " + scenario + " ok"), std::string::npos)
        << ranks.describe();
  }
}

// Kills (SIGKILL) or freezes (SIGSTOP) `victim` once every rank is looping over all_reduces;
// every other rank must exit non-zero within 60 s with a message that contains `expected`.
inline void expect_peers_stop(int world_size, int victim, int sig, const std::string& expected,
                       const std::map<std::string, std::string>& env = {}) {
  RankProcesses ranks(world_size, {"loop"}, env);
  for (int r = 0; r < world_size; ++r) {
    ASSERT_TRUE(ranks.wait_for_output(r, "looping", seconds(30))) << ranks.describe();
  }
  ranks.signal(victim, sig);
  const Clock::time_point struck = Clock::now();
  std::vector<int> survivors;
  for (int r = 0; r < world_size; ++r) {
    if (r != victim) survivors.push_back(r);
  }
  const bool all_stopped = ranks.wait(seconds(60), survivors);
  if (sig == SIGSTOP) ranks.signal(victim, SIGKILL);
  ASSERT_TRUE(all_stopped) << "some ranks still run 60 s after rank " << victim << " was stopped\n" << ranks.describe();
  for (int r : survivors) {
    const double took = seconds_between(struck, ranks.rank(r).exited_at);
    std::printf("rank %d stopped %.1f s after rank %d\n", r, took, victim);
    // The default peer time-out (8 s) plus two heartbeats: named within 15 s of the fault.
    EXPECT_LT(took, 15.0) << ranks.describe();
    EXPECT_TRUE(WIFEXITED(ranks.rank(r).status) && WEXITSTATUS(ranks.rank(r).status) == 3) << ranks.describe();
    EXPECT_NE(ranks.err(r).find("rank " + std::to_string(r) + ": " + expected), std::string::npos) << ranks.describe();
  }
}

}  // namespace shardplan::testing
