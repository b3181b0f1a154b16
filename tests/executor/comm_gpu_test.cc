// The communicator through NCCL, ranks as real processes (comm_test_rank), one GPU each: every
// collective against the unsharded arithmetic, the subgroups of {dp: 2, tp: 2}, a killed rank.
// And the one-shot all-reduce over peer memory (executor/comm/peer_all_reduce.h) that the
// communicator runs for small messages: against the sum in member order, bit for bit, eager and
// inside a CUDA graph; on two GPUs against NCCL's own result; on one GPU with every rank on it
// (CUDA IPC within one device), so that a one-GPU host tests the kernel and its set-up too.
// Tests skip where the GPUs they need are missing.
#include <c10/cuda/CUDAFunctions.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "tests/executor/comm_scenarios.h"

namespace shardplan::testing {
namespace {

const std::map<std::string, std::string> kNccl = {{"SHARDPLAN_TEST_BACKEND", "nccl"}};

#define SHARDPLAN_NEED_GPUS(n)         \
  if (c10::cuda::device_count() < (n)) \
  GTEST_SKIP() << "needs " << (n) << " CUDA devices, has " << static_cast<int>(c10::cuda::device_count())

// Runs the peer_all_reduce scenario on `world_size` ranks (every rank prints "ok") and checks
// which path the small all-reduces took: rank 0 logs "NCCL for every size" only when the group
// did not open its peer memory.
void expect_peer_scenario(int world_size, const std::map<std::string, std::string>& env, bool peer_path,
                          seconds limit) {
  RankProcesses ranks(world_size, {"peer_all_reduce"}, env);
  ASSERT_TRUE(ranks.wait(limit)) << "ranks still running after " << limit.count() << " s\n" << ranks.describe();
  for (int r = 0; r < world_size; ++r) {
    EXPECT_TRUE(WIFEXITED(ranks.rank(r).status) && WEXITSTATUS(ranks.rank(r).status) == 0) << ranks.describe();
    EXPECT_NE(ranks.out(r).find("rank " + std::to_string(r) + ": peer_all_reduce ok"), std::string::npos)
        << ranks.describe();
  }
  EXPECT_EQ(ranks.err(0).find("NCCL for every size") == std::string::npos, peer_path) << ranks.err(0);
}

std::map<std::string, std::string> with(std::map<std::string, std::string> env,
                                        const std::map<std::string, std::string>& more) {
  for (const auto& entry : more) env[entry.first] = entry.second;
  return env;
}

TEST(NcclCommunicator, EveryCollectiveOnTwoGpus) {
  SHARDPLAN_NEED_GPUS(2);
  for (const char* scenario : {"all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast", "barrier"}) {
    SCOPED_TRACE(scenario);
    expect_scenario_passes(2, scenario, kNccl);
  }
}

TEST(NcclCommunicator, EveryCollectiveOnTwoGpusWithoutThePeerAllReduce) {
  SHARDPLAN_NEED_GPUS(2);
  for (const char* scenario : {"all_reduce", "all_gather", "reduce_scatter"}) {
    SCOPED_TRACE(scenario);
    expect_scenario_passes(2, scenario, with(kNccl, {{"SHARDPLAN_PEER_ALL_REDUCE_MAX_BYTES", "0"}}));
  }
}

TEST(NcclCommunicator, SubgroupsOfDp2Tp2OnFourGpus) {
  SHARDPLAN_NEED_GPUS(4);
  expect_scenario_passes(4, "subgroups", kNccl);
}

TEST(NcclCommunicator, KilledRankStopsTheOtherRankNamingIt) {
  SHARDPLAN_NEED_GPUS(2);
  expect_peers_stop(2, 1, SIGKILL, "rank 1 stopped responding (last heartbeat ", kNccl);
}

// Two members: NCCL adds two values once, as the kernel does, so the same exact expectation holds
// for both paths: each gives peer_sum's bits, hence the same bits as the other.
TEST(PeerAllReduce, TwoGpusGiveNcclsBits) {
  SHARDPLAN_NEED_GPUS(2);
  {
    SCOPED_TRACE("one-shot over peer memory");
    expect_peer_scenario(2, kNccl, true, seconds(120));
  }
  {
    SCOPED_TRACE("NCCL");
    expect_peer_scenario(2, with(kNccl, {{"SHARDPLAN_PEER_ALL_REDUCE_MAX_BYTES", "0"}}), false, seconds(120));
  }
}

TEST(PeerAllReduce, FourGpus) {
  SHARDPLAN_NEED_GPUS(4);
  expect_peer_scenario(4, kNccl, true, seconds(120));
}

// Every rank on cuda:0: the ranks' kernels take turns on the GPU (time slices), so each call is
// slow, but the protocol, the IPC set-up and the results are those of separate GPUs. NCCL itself
// never starts (it refuses two ranks on one GPU): every all-reduce here is small.
TEST(PeerAllReduce, TwoRanksOnOneGpu) {
  SHARDPLAN_NEED_GPUS(1);
  expect_peer_scenario(2, with(kNccl, {{"SHARDPLAN_TEST_ONE_GPU", "1"}}), true, seconds(180));
}

TEST(PeerAllReduce, ThreeRanksOnOneGpu) {
  SHARDPLAN_NEED_GPUS(1);
  expect_peer_scenario(3, with(kNccl, {{"SHARDPLAN_TEST_ONE_GPU", "1"}}), true, seconds(240));
}

// Ranks whose limits differ would read each other's buffers at different offsets: every rank
// refuses at set-up (exit 2), naming both limits. One GPU: NCCL never starts.
TEST(PeerAllReduce, RanksWithDifferentLimitsRefuseToStart) {
  SHARDPLAN_NEED_GPUS(1);
  RankProcesses ranks(2, {"peer_all_reduce"},
                      with(kNccl, {{"SHARDPLAN_TEST_ONE_GPU", "1"}, {"SHARDPLAN_TEST_RANK1_PEER_MAX_BYTES", "65536"}}));
  ASSERT_TRUE(ranks.wait(seconds(60))) << ranks.describe();
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(WIFEXITED(ranks.rank(r).status) && WEXITSTATUS(ranks.rank(r).status) == 2) << ranks.describe();
    EXPECT_NE(ranks.err(r).find("limits differ: 524288 bytes on member 0, 65536 on member 1"), std::string::npos)
        << ranks.err(r);
  }
}

}  // namespace
}  // namespace shardplan::testing
