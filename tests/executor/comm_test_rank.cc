// One rank of the communicator and launcher tests (comm_test.cc, launcher_test.cc start several):
//   comm_test_rank SCENARIO
// reads its place from RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT (launch_env_from_environment),
// runs SCENARIO on CPU through Gloo (or on cuda:LOCAL_RANK through NCCL with
// SHARDPLAN_TEST_BACKEND=nccl; every rank on cuda:0 with SHARDPLAN_TEST_ONE_GPU=1, for the
// peer-memory all-reduce alone), checks every value it receives against what the unsharded
// arithmetic gives, and prints "rank R: SCENARIO ok" on success. Exit codes: 0 ok, 1 a wrong value,
// 2 a bad launch environment, 3 a CommError (printed "rank R: CommError: ...").
#include <ATen/core/Formatting.h>
#include <ATen/ops/allclose.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/full.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "executor/comm/communicator.h"
#include "executor/comm/launcher.h"

#ifdef SHARDPLAN_WITH_NCCL
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace shardplan {
namespace {

using Clock = std::chrono::steady_clock;

struct WrongValue : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string text_of(const at::Tensor& t) {
  std::ostringstream out;
  out << t.to(at::kDouble).flatten();
  return out.str();
}

// Where the collectives run: CPU (Gloo), or cuda:LOCAL_RANK with SHARDPLAN_TEST_BACKEND=nccl.
at::Device g_device(at::kCPU);
at::Tensor dev(const at::Tensor& t) { return t.to(g_device); }

void expect_equal(const at::Tensor& got_anywhere, const at::Tensor& want, const std::string& what) {
  const at::Tensor got = got_anywhere.cpu();
  if (got.sizes() != want.sizes() || got.scalar_type() != want.scalar_type() || !at::equal(got, want)) {
    throw WrongValue(what + ": got " + std::string(toString(got.scalar_type())) + " " + text_of(got) + " of shape " +
                     c10::str(got.sizes()) + ", want " + std::string(toString(want.scalar_type())) + " " +
                     text_of(want) + " of shape " + c10::str(want.sizes()));
  }
}

RankList world_ranks(int n) {
  RankList ranks;
  for (int r = 0; r < n; ++r) ranks.push_back(r);
  return ranks;
}

at::Tensor float_range(int64_t count, at::ScalarType dtype) {
  return at::arange(count, at::TensorOptions().dtype(at::kFloat)).to(dtype);
}

// t_r[i] = (r + 1) * (i % 7 + 1): small integers, exact in bf16 and fp16 even when summed.
at::Tensor all_reduce_input(int r, at::ScalarType dtype) {
  at::Tensor base = at::arange(15, at::TensorOptions().dtype(at::kLong)).remainder(7).add(1);
  return base.mul(r + 1).to(dtype).view({3, 5});
}

void all_reduce_scenario(Communicator& comm) {
  const int n = comm.world_size();
  const RankList world = world_ranks(n);
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf, at::kDouble, at::kLong}) {
    at::Tensor t = dev(all_reduce_input(comm.rank(), dtype));
    comm.all_reduce(t, world, "test all_reduce");
    at::Tensor want = all_reduce_input(0, at::kLong).mul(n * (n + 1) / 2).to(dtype);
    expect_equal(t, want, std::string("all_reduce ") + toString(dtype));
  }
  // A non-contiguous tensor is reduced in place too.
  at::Tensor base = dev(all_reduce_input(comm.rank(), at::kBFloat16));
  at::Tensor transposed = base.t();
  comm.all_reduce(transposed, world, "test all_reduce transposed");
  expect_equal(base, all_reduce_input(0, at::kLong).mul(n * (n + 1) / 2).to(at::kBFloat16),
               "all_reduce through a transposed view");
}

// Member r's tensor for the gather and scatter tests: 32 * (r + 1) + position, distinct and
// exact in bf16 for up to 4 members and 32 positions.
at::Tensor member_tensor(int r, std::vector<int64_t> shape, at::ScalarType dtype) {
  int64_t count = 1;
  for (int64_t s : shape) count *= s;
  return at::arange(count, at::TensorOptions().dtype(at::kFloat)).add(32 * (r + 1)).to(dtype).view(shape);
}

void all_gather_scenario(Communicator& comm) {
  const int n = comm.world_size();
  const RankList world = world_ranks(n);
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    for (int64_t dim : {0, 1, 2, -1}) {
      at::Tensor mine = member_tensor(comm.rank(), {2, 3, 4}, dtype);
      at::Tensor got = comm.all_gather(dev(mine), dim, world, "test all_gather");
      std::vector<at::Tensor> parts;
      for (int r = 0; r < n; ++r) parts.push_back(member_tensor(r, {2, 3, 4}, dtype));
      expect_equal(got, at::cat(parts, dim), "all_gather along dim " + std::to_string(dim) + " " + toString(dtype));
    }
  }
}

void reduce_scatter_scenario(Communicator& comm) {
  const int n = comm.world_size();
  const RankList world = world_ranks(n);
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    for (int64_t dim : {0, 1}) {
      std::vector<int64_t> shape{3, 2};
      shape[static_cast<size_t>(dim)] *= n;  // 2 (dim 1) or 3 (dim 0) rows per member
      at::Tensor mine = member_tensor(comm.rank(), shape, dtype);
      at::Tensor got = comm.reduce_scatter(dev(mine), dim, world, "test reduce_scatter");
      at::Tensor sum = at::zeros(shape, at::TensorOptions().dtype(at::kFloat));
      for (int r = 0; r < n; ++r) sum.add_(member_tensor(r, shape, at::kFloat));
      const int64_t chunk = shape[static_cast<size_t>(dim)] / n;
      at::Tensor want = sum.narrow(dim, comm.rank() * chunk, chunk).contiguous().to(dtype);
      expect_equal(got, want, "reduce_scatter along dim " + std::to_string(dim) + " " + toString(dtype));
    }
  }
}

// Rows sent from src to dst: (src + 2 * dst) % 3 of them (so some are 0); row k holds
// src * 32 + dst * 8 + k * 4 + column in its 4 columns: every value names where it comes from
// and where it goes, distinct and exact in bf16.
int64_t rows_between(int src, int dst) { return (src + 2 * dst) % 3; }
at::Tensor rows_for(int src, int dst, at::ScalarType dtype) {
  const int64_t rows = rows_between(src, dst);
  at::Tensor k = at::arange(rows, at::TensorOptions().dtype(at::kFloat)).view({rows, 1});
  at::Tensor col = at::arange(4, at::TensorOptions().dtype(at::kFloat)).view({1, 4});
  return k.mul(4).add(col).add(src * 32 + dst * 8).to(dtype);
}

void all_to_all_scenario(Communicator& comm) {
  const int n = comm.world_size();
  const int me = comm.rank();
  const RankList world = world_ranks(n);
  for (at::ScalarType dtype : {at::kFloat, at::kLong, at::kBFloat16}) {
    std::vector<at::Tensor> outgoing;
    std::vector<int64_t> send, recv;
    for (int j = 0; j < n; ++j) {
      outgoing.push_back(rows_for(me, j, dtype));
      send.push_back(rows_between(me, j));
      recv.push_back(rows_between(j, me));
    }
    at::Tensor got = comm.all_to_all(dev(at::cat(outgoing, 0)), send, recv, world, "test all_to_all");
    std::vector<at::Tensor> incoming;
    for (int j = 0; j < n; ++j) incoming.push_back(rows_for(j, me, dtype));
    expect_equal(got, at::cat(incoming, 0), std::string("all_to_all ") + toString(dtype));
  }
  // Nobody sends to the last member, and the last member sends nothing: empty tensors both ways.
  std::vector<int64_t> send(static_cast<size_t>(n), 0), recv(static_cast<size_t>(n), 0);
  if (me != n - 1) {
    for (int j = 0; j < n - 1; ++j) {
      send[static_cast<size_t>(j)] = 2;
      recv[static_cast<size_t>(j)] = 2;
    }
  }
  const int64_t rows = me != n - 1 ? 2 * (n - 1) : 0;
  at::Tensor mine = at::arange(rows * 3, at::TensorOptions().dtype(at::kFloat)).add(100 * me).view({rows, 3});
  at::Tensor got = comm.all_to_all(dev(mine), send, recv, world, "test all_to_all with empty members");
  std::vector<at::Tensor> want_parts;
  if (me != n - 1) {
    for (int j = 0; j < n - 1; ++j) {
      at::Tensor theirs =
          at::arange(2 * (n - 1) * 3, at::TensorOptions().dtype(at::kFloat)).add(100 * j).view({2 * (n - 1), 3});
      want_parts.push_back(theirs.narrow(0, 2 * me, 2));
    }
  }
  at::Tensor want =
      want_parts.empty() ? at::zeros({0, 3}, at::TensorOptions().dtype(at::kFloat)) : at::cat(want_parts, 0);
  expect_equal(got, want, "all_to_all with empty members");
}

void broadcast_scenario(Communicator& comm) {
  const int n = comm.world_size();
  const int root = n > 2 ? 2 : n - 1;
  const RankList world = world_ranks(n);
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    at::Tensor want = float_range(12, dtype).add(7).view({3, 4});
    at::Tensor t = dev(comm.rank() == root ? want.clone() : at::zeros({3, 4}, at::TensorOptions().dtype(dtype)));
    comm.broadcast(t, root, world, "test broadcast");
    expect_equal(t, want, std::string("broadcast from rank ") + std::to_string(root) + " " + toString(dtype));
  }
}

// The last rank arrives 1.5 s late; every other rank must wait for it in the barrier.
void barrier_scenario(Communicator& comm) {
  const bool late = comm.rank() == comm.world_size() - 1;
  comm.barrier("test barrier warm-up");
  if (late) std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const Clock::time_point start = Clock::now();
  comm.barrier("test barrier");
  const double waited = std::chrono::duration<double>(Clock::now() - start).count();
  std::cout << "rank " << comm.rank() << ": waited " << waited << " s in the barrier" << std::endl;
  if (!late && waited < 1.0)
    throw WrongValue("the barrier returned after " + std::to_string(waited) + " s, before the late rank arrived");
}

// {dp: 2, tp: 2}: tp groups [0,1] and [2,3], dp groups [0,2] and [1,3]. Rank r holds 10^r, so
// each sum spells its members: tp [0,1] -> 11, [2,3] -> 1100; dp [0,2] -> 101, [1,3] -> 1010.
void subgroups_scenario(Communicator& comm) {
  const int r = comm.rank();
  if (comm.world_size() != 4) throw WrongValue("the subgroup scenario needs 4 ranks");
  // Each rank lists the groups in another order, one that deadlocks if followed as given (rank 0
  // would wait in [0,2] for rank 2, rank 2 in [2,3] for rank 3, rank 3 in [1,3] for rank 1, rank 1
  // in [0,1] for rank 0): create_groups must put them in one order.
  const std::vector<std::vector<RankList>> listed = {{{0, 2}, {0, 1}, {1, 3}, {2, 3}},
                                                     {{0, 1}, {1, 3}, {0, 2}, {2, 3}},
                                                     {{2, 3}, {0, 2}, {0, 1}, {1, 3}},
                                                     {{1, 3}, {2, 3}, {0, 1}, {0, 2}}};
  const std::vector<RankList>& groups = listed[static_cast<size_t>(r)];
  comm.create_groups(groups);
  const RankList tp = r < 2 ? RankList{0, 1} : RankList{2, 3};
  const RankList dp = r % 2 == 0 ? RankList{0, 2} : RankList{1, 3};
  const double mine = std::pow(10.0, r);

  at::Tensor t = dev(at::full({2}, mine, at::TensorOptions().dtype(at::kDouble)));
  comm.all_reduce(t, tp, "tp all_reduce");
  expect_equal(t, at::full({2}, r < 2 ? 11.0 : 1100.0, at::TensorOptions().dtype(at::kDouble)), "tp all_reduce");
  t = dev(at::full({2}, mine, at::TensorOptions().dtype(at::kDouble)));
  comm.all_reduce(t, dp, "dp all_reduce");
  expect_equal(t, at::full({2}, r % 2 == 0 ? 101.0 : 1010.0, at::TensorOptions().dtype(at::kDouble)), "dp all_reduce");

  // Group order: gathering over dp [1,3] gives rank 1's value, then rank 3's.
  at::Tensor gathered =
      comm.all_gather(dev(at::full({1}, mine, at::TensorOptions().dtype(at::kDouble))), 0, dp, "dp all_gather");
  expect_equal(gathered,
               at::tensor({std::pow(10.0, dp[0]), std::pow(10.0, dp[1])}, at::TensorOptions().dtype(at::kDouble)),
               "dp all_gather");
  // all_to_all over tp: 1 row to the first member, 2 to the second.
  at::Tensor rows = dev(at::full({3, 1}, mine, at::TensorOptions().dtype(at::kDouble)));
  const int64_t index = r == tp[0] ? 0 : 1;
  at::Tensor got = comm.all_to_all(rows, {1, 2}, {index + 1, index + 1}, tp, "tp all_to_all");
  std::vector<double> want_values;
  for (int64_t member : tp) {
    for (int64_t k = 0; k < index + 1; ++k) want_values.push_back(std::pow(10.0, member));
  }
  expect_equal(got, at::tensor(want_values, at::TensorOptions().dtype(at::kDouble)).view({index + 1 == 1 ? 2 : 4, 1}),
               "tp all_to_all");
  // A broadcast from the second dp member.
  at::Tensor b = dev(at::full({1}, mine, at::TensorOptions().dtype(at::kDouble)));
  comm.broadcast(b, dp[1], dp, "dp broadcast");
  expect_equal(b, at::full({1}, std::pow(10.0, dp[1]), at::TensorOptions().dtype(at::kDouble)), "dp broadcast");

  // Misuse is a CommError that names the rank, the op, the group and the purpose.
  const RankList other_tp = r < 2 ? RankList{2, 3} : RankList{0, 1};
  for (const RankList& bad : {other_tp, RankList{0, 3}}) {
    try {
      at::Tensor x = dev(at::zeros({1}));
      comm.all_reduce(x, bad, "misused all_reduce");
      throw WrongValue("all_reduce over a group this rank cannot use did not fail");
    } catch (const CommError& e) {
      std::cout << "rank " << r << ": expected error: " << e.what() << std::endl;
    }
  }
}

// Every rank runs all_reduces until it is stopped (the test kills or freezes one rank).
void loop_scenario(Communicator& comm) {
  const RankList world = world_ranks(comm.world_size());
  for (int64_t i = 0;; ++i) {
    at::Tensor t = dev(at::full({4}, 1.0, at::TensorOptions().dtype(at::kFloat)));
    comm.all_reduce(t, world, "loop all_reduce " + std::to_string(i));
    t = t.cpu();  // waits for the collective (NCCL runs asynchronously)
    if (i == 5) std::cout << "rank " << comm.rank() << ": looping" << std::endl;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// Rank 1 stops calling collectives (but stays alive); the others must time out.
void hang_scenario(Communicator& comm) {
  const RankList world = world_ranks(comm.world_size());
  at::Tensor t = dev(at::ones({4}));
  comm.all_reduce(t, world, "warm-up");
  if (comm.rank() == 1) {
    std::cout << "rank 1: hanging" << std::endl;
    std::this_thread::sleep_for(std::chrono::hours(1));
  }
  comm.all_reduce(t, world, "all_reduce[tp] after model.layers.3.self_attn");
}

#ifdef SHARDPLAN_WITH_NCCL
// Member r's values for the peer all-reduce: distinct per member, element and `salt`, and not
// exact in 16 bits, so that a different order of the sums or a second rounding shows.
at::Tensor peer_input(int r, int64_t count, at::ScalarType dtype, int salt) {
  return at::arange(count, at::TensorOptions().dtype(at::kFloat)).mul(0.37).add(1.3 * r + 0.71 * salt).sin().mul(r + 1).to(dtype);
}

// The sum in member order, in float32, rounded once to the type: the one-shot kernel's bits on
// every member, and NCCL's for two members (one addition, commutative).
at::Tensor peer_sum(int n, int64_t count, at::ScalarType dtype, int salt) {
  at::Tensor sum = peer_input(0, count, dtype, salt).to(at::kFloat);
  for (int m = 1; m < n; ++m) sum = sum.add(peer_input(m, count, dtype, salt).to(at::kFloat));
  return sum.to(dtype);
}

// NCCL sums more than two members in its own order: within rounding there.
void expect_sum(const at::Tensor& got, int n, int64_t count, at::ScalarType dtype, int salt, const std::string& what) {
  const at::Tensor want = peer_sum(n, count, dtype, salt);
  const char* max_bytes = std::getenv("SHARDPLAN_PEER_ALL_REDUCE_MAX_BYTES");
  const bool nccl = max_bytes != nullptr && std::string(max_bytes) == "0";
  if (n == 2 || !nccl) {
    expect_equal(got.flatten(), want, what);
  } else if (!at::allclose(got.cpu().to(at::kFloat).flatten(), want.to(at::kFloat), 2e-2, 2e-2)) {
    throw WrongValue(what + ": not within rounding of the sum");
  }
}

// All-reduces of every size the one-shot kernel takes (one element to its whole 512 KiB buffer,
// sizes that end mid-vector, a tensor that starts off a 16-byte boundary), in float32, float16
// and bfloat16; then the same inside a CUDA graph replayed with new inputs. Each result must be
// the sum in member order, bit for bit (peer_sum).
void peer_all_reduce_scenario(Communicator& comm) {
  const int n = comm.world_size();
  const RankList world = world_ranks(n);
  for (at::ScalarType dtype : {at::kFloat, at::kHalf, at::kBFloat16}) {
    const int64_t largest = 512 * 1024 / static_cast<int64_t>(c10::elementSize(dtype));
    for (int64_t count : {int64_t{1}, int64_t{7}, int64_t{8}, int64_t{4096}, int64_t{4101}, int64_t{65539}, largest}) {
      const std::string what = std::string("all_reduce of ") + std::to_string(count) + " " + toString(dtype);
      at::Tensor t = dev(peer_input(comm.rank(), count, dtype, 0));
      comm.all_reduce(t, world, what);
      expect_sum(t, n, count, dtype, 0, what);
      // Off a 16-byte boundary (one element in), so the kernel's unaligned path runs; the elements
      // around it stay untouched.
      const at::Tensor zeros = at::zeros({8}, at::TensorOptions().dtype(dtype));
      at::Tensor padded = dev(at::cat({zeros.narrow(0, 0, 1), peer_input(comm.rank(), count, dtype, 1), zeros}));
      at::Tensor shifted = padded.narrow(0, 1, count);
      comm.all_reduce(shifted, world, what + ", unaligned");
      expect_sum(shifted, n, count, dtype, 1, what + ", unaligned");
      expect_equal(padded.narrow(0, 0, 1).cpu(), zeros.narrow(0, 0, 1), what + ": the element before");
      expect_equal(padded.narrow(0, count + 1, 8).cpu(), zeros, what + ": the elements after");
    }
  }
  // A graph of three all-reduces (decode-sized), replayed four times with new inputs.
  const std::vector<int64_t> counts{4096, 8 * 4096, 4101};
  std::vector<at::Tensor> buffers;
  for (int64_t count : counts) buffers.push_back(dev(peer_input(comm.rank(), count, at::kBFloat16, 0)));
  for (at::Tensor& b : buffers) comm.all_reduce(b, world, "warm-up before the capture");
  at::cuda::CUDAGraph graph;
  c10::cuda::device_synchronize();
  {
    const c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool(false, g_device.index());
    const c10::cuda::CUDAStreamGuard guard(stream);
    graph.capture_begin();
    for (at::Tensor& b : buffers) comm.all_reduce(b, world, "captured all_reduce");
    graph.capture_end();
  }
  for (int replay = 0; replay < 4; ++replay) {
    for (size_t i = 0; i < counts.size(); ++i) buffers[i].copy_(dev(peer_input(comm.rank(), counts[i], at::kBFloat16, 10 + replay)));
    graph.replay();
    for (size_t i = 0; i < counts.size(); ++i) {
      expect_sum(buffers[i], n, counts[i], at::kBFloat16, 10 + replay,
                 "replay " + std::to_string(replay) + " of the graph, all_reduce " + std::to_string(i));
    }
  }
}
#endif

int run_scenario(const std::string& scenario, const LaunchEnv& env) {
  static const std::map<std::string, std::function<void(Communicator&)>> scenarios = {
      {"all_reduce", all_reduce_scenario},
      {"all_gather", all_gather_scenario},
      {"reduce_scatter", reduce_scatter_scenario},
      {"all_to_all", all_to_all_scenario},
      {"broadcast", broadcast_scenario},
      {"barrier", barrier_scenario},
      {"subgroups", subgroups_scenario},
      {"loop", loop_scenario},
      {"hang", hang_scenario},
#ifdef SHARDPLAN_WITH_NCCL
      {"peer_all_reduce", peer_all_reduce_scenario},
#endif
  };
  const auto found = scenarios.find(scenario);
  if (found == scenarios.end()) {
    std::cerr << "unknown scenario " << scenario << "\n";
    return 2;
  }
  CommOptions options;
  const char* backend = std::getenv("SHARDPLAN_TEST_BACKEND");
  options.backend = backend != nullptr && std::string(backend) == "nccl" ? CommBackend::kNccl : CommBackend::kGloo;
  // Rank 1's own one-shot all-reduce limit (the launch gives every rank the same environment).
  const char* rank1_limit = std::getenv("SHARDPLAN_TEST_RANK1_PEER_MAX_BYTES");
  if (rank1_limit != nullptr && env.rank == 1) ::setenv("SHARDPLAN_PEER_ALL_REDUCE_MAX_BYTES", rank1_limit, 1);
  const char* one_gpu = std::getenv("SHARDPLAN_TEST_ONE_GPU");
  const int device = one_gpu != nullptr && std::string(one_gpu) == "1" ? 0 : env.local_rank;
  if (options.backend == CommBackend::kNccl) g_device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device));
  options.rank = env.rank;
  options.world_size = env.world_size;
  options.local_rank = device;
  options.master_addr = env.master_addr;
  options.master_port = env.master_port;
  const auto milliseconds_from = [](const char* name, std::chrono::milliseconds fallback) {
    const char* value = std::getenv(name);
    return value != nullptr ? std::chrono::milliseconds(std::atoi(value)) : fallback;
  };
  options.timeout = milliseconds_from("SHARDPLAN_TEST_TIMEOUT_MS", std::chrono::milliseconds(30000));
  // Unset: the communicator's own defaults, as `executor run` uses them.
  options.rendezvous_timeout = milliseconds_from("SHARDPLAN_TEST_RENDEZVOUS_MS", options.rendezvous_timeout);
  options.rendezvous_report_every = milliseconds_from("SHARDPLAN_TEST_REPORT_MS", options.rendezvous_report_every);
  try {
    std::unique_ptr<Communicator> comm = make_communicator(options);
    found->second(*comm);
  } catch (const CommError& e) {
    std::cerr << "rank " << env.rank << ": CommError: " << e.what() << std::endl;
    return e.exit_code();
  } catch (const WrongValue& e) {
    std::cerr << "rank " << env.rank << ": WRONG VALUE: " << e.what() << std::endl;
    return 1;
  }
  std::cout << "rank " << env.rank << ": " << scenario << " ok" << std::endl;
  return 0;
}

// Launcher scenarios: no communicator.
int run_launcher_scenario(const std::string& scenario, const LaunchEnv& env, char** argv) {
  if (scenario == "print_env") {
    std::cout << "rank " << env.rank << " of " << env.world_size << " local " << env.local_rank << " at "
              << env.master_addr << ":" << env.master_port;
    for (const char* name : {"NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS",
                             "SHARDPLAN_TEST_MARK", "TORCHELASTIC_USE_AGENT_STORE"}) {
      const char* value = std::getenv(name);
      std::cout << " " << name << "=" << (value != nullptr ? value : "<unset>");
    }
    std::cout << "\n";
    std::cerr << "diagnostic line from rank " << env.rank << "\npartial line without newline";
    return 0;
  }
  // fail RANK CODE [ignore_term]: that rank exits with CODE (or dies by SIGKILL if CODE is "kill")
  // after 0.3 s (1.5 s with ignore_term); the others sleep, writing their pid, until stopped (with
  // ignore_term, SIGTERM cannot stop them).
  if (scenario == "fail") {
    const int victim = std::atoi(argv[2]);
    const std::string how = argv[3];
    const bool ignore_term = argv[4] != nullptr && std::string(argv[4]) == "ignore_term";
    if (env.rank == victim) {
      std::this_thread::sleep_for(std::chrono::milliseconds(ignore_term ? 1500 : 300));
      if (how == "kill") ::raise(SIGKILL);
      return std::atoi(how.c_str());
    }
    if (ignore_term) ::signal(SIGTERM, SIG_IGN);
    std::cerr << "sleeping pid " << ::getpid() << std::endl;
    std::this_thread::sleep_for(std::chrono::seconds(120));
    return 0;
  }
  if (scenario == "sleep") {
    std::cerr << "sleeping pid " << ::getpid() << std::endl;
    std::this_thread::sleep_for(std::chrono::seconds(120));
    return 0;
  }
  std::cerr << "unknown scenario " << scenario << "\n";
  return 2;
}

}  // namespace
}  // namespace shardplan

int main(int argc, char** argv) {
  using namespace shardplan;
  if (argc < 2) {
    std::cerr << "usage: comm_test_rank SCENARIO [ARGS...]\n";
    return 2;
  }
  std::optional<LaunchEnv> env;
  try {
    env = launch_env_from_environment();
  } catch (const LaunchError& e) {
    std::cerr << "comm_test_rank: bad launch environment: " << e.what() << "\n";
    return 2;
  }
  if (!env) {
    std::cerr << "comm_test_rank: RANK and WORLD_SIZE are not set\n";
    return 2;
  }
  const std::string scenario = argv[1];
  if (scenario == "print_env" || scenario == "fail" || scenario == "sleep") {
    return run_launcher_scenario(scenario, *env, argv);
  }
  return run_scenario(scenario, *env);
}
