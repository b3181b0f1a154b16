// The Gloo communicator on CPU, 2 to 4 ranks as real processes (comm_test_rank, started directly:
// no launcher watches them): every collective against the unsharded arithmetic, the subgroups of
// {dp: 2, tp: 2}, misuse, a hung peer (time-out), and a rank killed or frozen mid-run (every
// other rank must stop within 60 s naming it). The same through NCCL: comm_gpu_test.cc.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "tests/executor/comm_scenarios.h"

namespace shardplan::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// The CPU communicator exists only where gloo's headers matched libtorch (executor/CMakeLists.txt).
#ifdef SHARDPLAN_WITH_GLOO
#define SHARDPLAN_NEED_GLOO()
#else
#define SHARDPLAN_NEED_GLOO() GTEST_SKIP() << "this build has no Gloo communicator"
#endif

TEST(GlooCommunicator, AllReduceTwoRanks) {
  SHARDPLAN_NEED_GLOO();
  expect_scenario_passes(2, "all_reduce");
}
TEST(GlooCommunicator, AllReduceFourRanks) {
  SHARDPLAN_NEED_GLOO();
  expect_scenario_passes(4, "all_reduce");
}
TEST(GlooCommunicator, AllGatherAlongEveryDim) {
  SHARDPLAN_NEED_GLOO();
  expect_scenario_passes(4, "all_gather");
}
TEST(GlooCommunicator, ReduceScatterAlongDims0And1) {
  SHARDPLAN_NEED_GLOO();
  expect_scenario_passes(2, "reduce_scatter");
  expect_scenario_passes(4, "reduce_scatter");
}
TEST(GlooCommunicator, AllToAllUnevenCountsAndEmptyMembers) {
  SHARDPLAN_NEED_GLOO();
  expect_scenario_passes(2, "all_to_all");
  expect_scenario_passes(4, "all_to_all");
}
TEST(GlooCommunicator, BroadcastFromANonZeroRoot) {
  SHARDPLAN_NEED_GLOO();
  expect_scenario_passes(4, "broadcast");
}
TEST(GlooCommunicator, BarrierWaitsForTheLastRank) {
  SHARDPLAN_NEED_GLOO();
  expect_scenario_passes(3, "barrier");
}

TEST(GlooCommunicator, SubgroupsOfDp2Tp2SumTheRightPeers) {
  SHARDPLAN_NEED_GLOO();
  RankProcesses ranks(4, {"subgroups"});
  ASSERT_TRUE(ranks.wait(seconds(45))) << ranks.describe();
  for (int r = 0; r < 4; ++r) {
    ASSERT_TRUE(WIFEXITED(ranks.rank(r).status) && WEXITSTATUS(ranks.rank(r).status) == 0) << ranks.describe();
    const std::string out = ranks.out(r);
    EXPECT_NE(out.find("rank " + std::to_string(r) + ": subgroups ok"), std::string::npos) << out;
    // The misuse errors name the rank, the op, the group and the purpose.
    const std::string other_tp = r < 2 ? "[2,3]" : "[0,1]";
    EXPECT_NE(out.find("rank " + std::to_string(r) + ": all_reduce over group " + other_tp +
                       " (\"misused all_reduce\"): rank " + std::to_string(r) + " is not a member of the group"),
              std::string::npos)
        << out;
    if (r == 0 || r == 3) {
      EXPECT_NE(out.find("all_reduce over group [0,3] (\"misused all_reduce\"): the group was not created"),
                std::string::npos)
          << out;
    }
  }
}

// A peer that stays alive but never joins the collective: the others raise a CommError within the
// time-out (3 s here) plus the liveness verdict time (12 s), naming rank, op, group and purpose.
TEST(GlooCommunicator, HungPeerRaisesCommErrorWithinTheTimeout) {
  SHARDPLAN_NEED_GLOO();
  RankProcesses ranks(3, {"hang"}, {{"SHARDPLAN_TEST_TIMEOUT_MS", "3000"}});
  ASSERT_TRUE(ranks.wait_for_output(1, "rank 1: hanging", seconds(30))) << ranks.describe();
  const Clock::time_point hung = Clock::now();
  ASSERT_TRUE(ranks.wait(seconds(40), {0, 2})) << ranks.describe();
  for (int r : {0, 2}) {
    const double took = seconds_between(hung, ranks.rank(r).exited_at);
    std::printf("rank %d raised after %.1f s\n", r, took);
    EXPECT_LT(took, 3 + 12 + 10) << ranks.describe();
    EXPECT_TRUE(WIFEXITED(ranks.rank(r).status) && WEXITSTATUS(ranks.rank(r).status) == 3) << ranks.describe();
    EXPECT_NE(ranks.err(r).find(
                  "rank " + std::to_string(r) + ": CommError: rank " + std::to_string(r) +
                  ": all_reduce over group [0,1,2] (\"all_reduce[tp] after model.layers.3.self_attn\") failed: "),
              std::string::npos)
        << ranks.describe();
  }
}

TEST(PeerLiveness, KilledRankStopsEveryOtherRankNamingIt) {
  SHARDPLAN_NEED_GLOO();
  expect_peers_stop(4, 2, SIGKILL, "rank 2 stopped responding (last heartbeat ");
}

TEST(PeerLiveness, KilledStoreHostStopsEveryOtherRankNamingIt) {
  SHARDPLAN_NEED_GLOO();
  expect_peers_stop(3, 0, SIGKILL, "rank 0 (which hosts the TCP store at 127.0.0.1:");
}

TEST(PeerLiveness, FrozenRankStopsEveryOtherRankNamingIt) {
  SHARDPLAN_NEED_GLOO();
  expect_peers_stop(3, 1, SIGSTOP, "rank 1 stopped responding (last heartbeat ");
}

TEST(PeerLiveness, MessageNamesTheCollectiveInFlight) {
  SHARDPLAN_NEED_GLOO();
  RankProcesses ranks(2, {"loop"});
  ASSERT_TRUE(ranks.wait_for_output(0, "looping", seconds(30))) << ranks.describe();
  ranks.signal(1, SIGKILL);
  ASSERT_TRUE(ranks.wait(seconds(60), {0})) << ranks.describe();
  const std::string err = ranks.err(0);
  EXPECT_NE(err.find("rank 0: rank 1 stopped responding (last heartbeat "), std::string::npos) << err;
  EXPECT_NE(err.find(" during all_reduce over group [0,1] (\"loop all_reduce "), std::string::npos) << err;
  EXPECT_TRUE(WIFEXITED(ranks.rank(0).status) && WEXITSTATUS(ranks.rank(0).status) == 3) << err;
}

// A rank that never starts: with the default settings rank 0 names it within 15 s (the others
// count the missing) ...
TEST(Rendezvous, MissingRankIsNamedWithin15Seconds) {
  SHARDPLAN_NEED_GLOO();
  RankProcesses ranks(3, {"all_reduce"}, {}, /*started=*/2);
  EXPECT_TRUE(ranks.wait_for_output(0, "rank 0: waiting for rank 2 of 3 to join the rendezvous at 127.0.0.1:",
                                    seconds(15)))
      << ranks.describe();
  EXPECT_TRUE(ranks.wait_for_output(1, "rank 1: waiting for 1 of the 3 ranks to join the rendezvous at 127.0.0.1:",
                                    seconds(15)))
      << ranks.describe();
}

// ... and past --rendezvous-timeout they fail naming it, exit code 3.
TEST(Rendezvous, MissingRankFailsTheRunAfterTheTimeout) {
  SHARDPLAN_NEED_GLOO();
  RankProcesses ranks(4, {"all_reduce"}, {{"SHARDPLAN_TEST_RENDEZVOUS_MS", "3000"}, {"SHARDPLAN_TEST_REPORT_MS", "1000"}},
                      /*started=*/2);
  ASSERT_TRUE(ranks.wait(seconds(20))) << ranks.describe();
  for (int r : {0, 1}) {
    EXPECT_TRUE(WIFEXITED(ranks.rank(r).status) && WEXITSTATUS(ranks.rank(r).status) == 3) << ranks.describe();
    EXPECT_NE(ranks.err(r).find("ranks 2 and 3 of 4 have not joined within 3 s (--rendezvous-timeout)"),
              std::string::npos)
        << ranks.describe();
  }
}

// Another program listens on MASTER_PORT: rank 0 cannot host the store and says so; rank 1,
// connected to that program, does not hang silently and fails after the rendezvous time-out.
TEST(Rendezvous, BusyMasterPortIsNamed) {
  SHARDPLAN_NEED_GLOO();
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = 0;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(listener, 16), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const int port = ntohs(address.sin_port);
  {
    RankProcesses ranks(2, {"all_reduce"}, {{"SHARDPLAN_TEST_RENDEZVOUS_MS", "4000"}, {"SHARDPLAN_TEST_REPORT_MS", "1000"}},
                        /*started=*/-1, port);
    ASSERT_TRUE(ranks.wait(seconds(30))) << ranks.describe();
    EXPECT_TRUE(WIFEXITED(ranks.rank(0).status) && WEXITSTATUS(ranks.rank(0).status) == 3) << ranks.describe();
    EXPECT_NE(ranks.err(0).find("is in use by another program; choose a free MASTER_PORT"), std::string::npos)
        << ranks.describe();
    EXPECT_TRUE(WIFEXITED(ranks.rank(1).status) && WEXITSTATUS(ranks.rank(1).status) == 3) << ranks.describe();
    EXPECT_NE(ranks.err(1).find("rank 1: "), std::string::npos) << ranks.describe();
    EXPECT_NE(ranks.err(1).find("another program"), std::string::npos) << ranks.describe();
  }
  ::close(listener);
}

// The size limit of the one-shot all-reduce (NCCL groups) is checked on every backend.
TEST(GlooCommunicator, BadPeerAllReduceSizeIsAClearError) {
  for (const auto& [value, expected] : std::vector<std::pair<std::string, std::string>>{
           {"12k", "SHARDPLAN_PEER_ALL_REDUCE_MAX_BYTES=12k is not a number of bytes"},
           {"999999999", "the one-shot all-reduce takes messages of at most 67108864 bytes, not 999999999"}}) {
    SCOPED_TRACE(value);
    RankProcesses ranks(1, {"all_reduce"}, {{"SHARDPLAN_PEER_ALL_REDUCE_MAX_BYTES", value}});
    ASSERT_TRUE(ranks.wait(seconds(20)));
    EXPECT_TRUE(WIFEXITED(ranks.rank(0).status) && WEXITSTATUS(ranks.rank(0).status) == 2) << ranks.describe();
    EXPECT_NE(ranks.err(0).find(expected), std::string::npos) << ranks.err(0);
  }
}

TEST(GlooCommunicator, BadLaunchEnvironmentIsAClearError) {
  RankProcesses ranks(1, {"all_reduce"}, {{"WORLD_SIZE", ""}});
  ASSERT_TRUE(ranks.wait(seconds(20)));
  EXPECT_TRUE(WIFEXITED(ranks.rank(0).status) && WEXITSTATUS(ranks.rank(0).status) == 2);
  EXPECT_NE(ranks.err(0).find("RANK is set but WORLD_SIZE is not"), std::string::npos) << ranks.err(0);
}


}  // namespace
}  // namespace shardplan::testing
