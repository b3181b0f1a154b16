// The decode step's all-reduce, NCCL against the one-shot kernel over peer memory
// (executor/comm/peer_all_reduce.h), as a tensor-parallel decode runs it: `calls` all-reduces of
// [batch, hidden] bfloat16 back to back inside one CUDA graph (a Llama-3-8B step on TP2 runs 64 of
// 8 KiB at batch 1). Per message size: microseconds per all-reduce on each path, from replays of
// the graph timed on rank 0 as the kernel benchmarks time a call (bench/cuda_timing.h).
//
//   all_reduce_bench [GPUS [HIDDEN [CALLS [BATCH...]]]]   (defaults: 2 4096 64 1 8 32 64 128)
//
// Starts GPUS ranks of itself (one GPU each, over the executor's own launcher) twice: once with
// SHARDPLAN_PEER_ALL_REDUCE_MAX_BYTES=0 (NCCL for every size), once with the communicator's
// default (the one-shot kernel up to its limit, CommOptions::peer_all_reduce_max_bytes, NCCL
// above). Prints one table line per size and path (docs/benchmarks.md).
#include <ATen/cuda/CUDAGraph.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <stdlib.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "bench/cuda_timing.h"
#include "executor/comm/communicator.h"
#include "executor/comm/launcher.h"

namespace shardplan {
namespace {

struct Settings {
  int gpus = 2;
  int64_t hidden = 4096;
  int calls = 64;
  std::vector<int64_t> batches{1, 8, 32, 64, 128};
};

Settings parse(int argc, char** argv) {
  Settings s;
  const auto number = [](const char* text) {
    char* end = nullptr;
    const long long value = std::strtoll(text, &end, 10);
    if (end == text || *end != '\0' || value < 1) {
      std::cerr << "all_reduce_bench: '" << text << "' is not a positive whole number\n";
      std::exit(2);
    }
    return value;
  };
  if (argc > 1) s.gpus = static_cast<int>(number(argv[1]));
  if (argc > 2) s.hidden = number(argv[2]);
  if (argc > 3) s.calls = static_cast<int>(number(argv[3]));
  if (argc > 4) {
    s.batches.clear();
    for (int i = 4; i < argc; ++i) s.batches.push_back(number(argv[i]));
  }
  return s;
}

// One rank: per batch, a graph of `calls` all-reduces, timed on rank 0.
int run_rank(const LaunchEnv& env, const Settings& s) {
  CommOptions options;
  options.backend = CommBackend::kNccl;
  options.rank = env.rank;
  options.world_size = env.world_size;
  options.local_rank = env.local_rank;
  options.master_addr = env.master_addr;
  options.master_port = env.master_port;
  std::unique_ptr<Communicator> comm = make_communicator(options);
  RankList world;
  for (int r = 0; r < env.world_size; ++r) world.push_back(r);
  comm->create_groups({world});
  const char* limit = std::getenv("SHARDPLAN_PEER_ALL_REDUCE_MAX_BYTES");
  const std::string path = limit != nullptr && std::string(limit) == "0" ? "NCCL" : "default";
  const at::Device device(at::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
  for (int64_t batch : s.batches) {
    at::Tensor t = at::zeros({batch, s.hidden}, at::TensorOptions().dtype(at::kBFloat16).device(device));
    for (int i = 0; i < 3; ++i) comm->all_reduce(t, world, "warm-up");
    c10::cuda::device_synchronize();
    at::cuda::CUDAGraph graph;
    {
      const c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool(false, device.index());
      const c10::cuda::CUDAStreamGuard guard(stream);
      graph.capture_begin();
      for (int i = 0; i < s.calls; ++i) comm->all_reduce(t, world, "all_reduce[tp]");
      graph.capture_end();
    }
    const double us = bench::median_us([&] { graph.replay(); }) / s.calls;
    const int64_t bytes = batch * s.hidden * 2;
    if (env.rank == 0) {
      std::printf("%-8s %6d %8lld %10lld %12.2f\n", path.c_str(), env.world_size, static_cast<long long>(batch),
                  static_cast<long long>(bytes), us);
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace shardplan

int main(int argc, char** argv) {
  using namespace shardplan;
  const Settings s = parse(argc, argv);
  try {
    if (std::optional<LaunchEnv> env = launch_env_from_environment()) return run_rank(*env, s);
    std::printf("# %d all-reduces of [batch, %lld] bfloat16 in one CUDA graph; us per all-reduce\n",
                s.calls, static_cast<long long>(s.hidden));
    std::printf("%-8s %6s %8s %10s %12s\n", "path", "ranks", "batch", "bytes", "us");
    std::fflush(stdout);
    const std::vector<std::string> args(argv, argv + argc);
    ::setenv("SHARDPLAN_PEER_ALL_REDUCE_MAX_BYTES", "0", 1);
    if (const int rc = run_local_ranks(s.gpus, args)) return rc;
    ::unsetenv("SHARDPLAN_PEER_ALL_REDUCE_MAX_BYTES");
    return run_local_ranks(s.gpus, args);
  } catch (const std::exception& e) {
    std::cerr << "all_reduce_bench: " << e.what() << "\n";
    return 2;
  }
}
