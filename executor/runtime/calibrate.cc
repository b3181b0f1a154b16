// Measuring the device for the cost model (see calibrate.h).
#include "executor/runtime/calibrate.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <numeric>
#include <iostream>
#include <sstream>
#include <vector>

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <optional>

#include "executor/comm/communicator.h"
#include "executor/comm/launcher.h"
#include "models/layers/fused.h"
#include "planner/io/output_file.h"
#include "planner/plan/collectives.h"
#include "planner/sweep/hardware.h"

#if __has_include(<ATen/cuda/CUDAGraph.h>)
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#define SHARDPLAN_CALIBRATE_CUDA 1
#else
#define SHARDPLAN_CALIBRATE_CUDA 0
#endif

namespace shardplan {
namespace {

// Waits for the device: reading one element back blocks until its stream is done.
void synchronize(const at::Tensor& t) { (void)t.view({-1})[t.numel() - 1].item<float>(); }

// Median seconds of one call of `fn(i)`, over `repeats` samples (after warm-ups) of `inner` calls
// in a row and one wait, so that short kernels are timed without the wait's latency.
double median_seconds(int repeats, const at::Tensor& waits_on, const std::function<void(int)>& fn, int inner = 1) {
  for (int i = 0; i < 2 * inner; ++i) fn(i);
  synchronize(waits_on);
  std::vector<double> seconds;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < inner; ++i) fn(i);
    synchronize(waits_on);
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / inner);
  }
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}

struct GemmClass {
  const char* name;
  int64_t rows;
  double tflops = 0, weight_GBps = 0;
};

struct Measured {
  double memory_GBps = 0;
  double matmul_tflops = 0;
  int64_t matmul_n = 0;
  std::vector<GemmClass> gemm;
  double kernel_overhead_us = 0;  // 0: not measured (CPU)
  double eager_kernel_us = 0;     // a small kernel launched one at a time (no graph)
  double attention_GBps = 0;      // KV-cache bytes a decode attention reads per second (0: not measured)
  int64_t memory_bytes = 0;       // 0: not known (CPU)
  std::string device_name;
};

Measured measure(const CalibrateOptions& o) {
  const bool cuda = o.device == "cuda";
  const at::Device device = cuda ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  const at::ScalarType dtype = cuda ? at::kBFloat16 : at::kFloat;
  const auto opts = at::TensorOptions().dtype(dtype).device(device);
  Measured m;
  const int repeats = o.quick ? 3 : 20;
  std::cerr << "calibrate: memory bandwidth\n";
  {
    const int64_t mib = cuda ? (o.quick ? 256 : 2048) : (o.quick ? 16 : 256);
    const int64_t bytes = mib << 20;
    const at::Tensor src = at::rand({bytes / 4}, opts.dtype(at::kFloat));
    at::Tensor dst = at::empty_like(src);
    const double s = median_seconds(repeats, dst, [&](int) { dst.copy_(src); });
    m.memory_GBps = 2.0 * static_cast<double>(bytes) / s / 1e9;  // read + write
  }
  std::cerr << "calibrate: matmul peak\n";
  {
    m.matmul_n = cuda ? (o.quick ? 2048 : 8192) : (o.quick ? 256 : 1024);
    const at::Tensor a = at::randn({m.matmul_n, m.matmul_n}, opts), b = at::randn({m.matmul_n, m.matmul_n}, opts);
    at::Tensor c = at::empty({m.matmul_n, m.matmul_n}, opts);
    const double s = median_seconds(repeats, c, [&](int) { at::mm_out(c, a, b); }, 4);
    m.matmul_tflops = 2.0 * std::pow(static_cast<double>(m.matmul_n), 3) / s / 1e12;
  }
  std::cerr << "calibrate: GEMM shape classes\n";
  {
    // A Llama-3-8B MLP's shape (4096 -> 14336); two weights in turn, so that neither is served
    // from the last-level cache (H200: 50 MB).
    const int64_t in = cuda ? 4096 : 512, out = cuda ? 14336 : 1792;
    const at::Tensor w[2] = {at::randn({out, in}, opts), at::randn({out, in}, opts)};
    for (GemmClass g : {GemmClass{"decode", 1}, GemmClass{"decode", 8}, GemmClass{"decode", 32},
                        GemmClass{"decode", 64}, GemmClass{"decode", 128}, GemmClass{"medium", 256},
                        GemmClass{"medium", 1024}, GemmClass{"prefill", 8192}}) {
      if (!cuda) g.rows = std::min<int64_t>(g.rows, 1024);
      const at::Tensor x = at::randn({g.rows, in}, opts);
      at::Tensor y = at::empty({g.rows, out}, opts);
      const double s = median_seconds(repeats, y, [&](int i) { at::mm_out(y, x, w[i % 2].t()); }, 10);
      g.tflops = 2.0 * static_cast<double>(g.rows) * in * out / s / 1e12;
      g.weight_GBps = static_cast<double>(w[0].numel() * w[0].element_size()) / s / 1e9;
      m.gemm.push_back(g);
    }
  }
  std::cerr << "calibrate: kernel launched eagerly\n";
  {
    // Small kernels one after the other, as an eager step (a prefill, a MoE decode that counts
    // rows on the host) launches them: the time per kernel is the launch, not the work.
    const int kernels = 200;
    at::Tensor x = at::zeros({1}, opts.dtype(at::kFloat));
    const double s = median_seconds(repeats, x, [&](int) {
      for (int i = 0; i < kernels; ++i) x.add_(1);
    });
    m.eager_kernel_us = s / kernels * 1e6;
  }
#if SHARDPLAN_CALIBRATE_CUDA
  if (cuda && o.quick == false) {
    // The executor's decode attention on a Llama-3-8B layer's shape (32 q heads over 8 KV heads of
    // 128), 8 requests with 4,096 of 4,160 cache rows filled: the rate it reads the KV cache.
    std::cerr << "calibrate: decode attention\n";
    const int64_t batch = 8, q_heads = 32, kv_heads = 8, d = 128, filled = 4096, capacity = 4160;
    if (fused_decode_attention_supports(d, q_heads, kv_heads, true)) {
      const at::Tensor k = at::randn({batch, kv_heads, capacity, d}, opts), v = at::randn({batch, kv_heads, capacity, d}, opts);
      const at::Tensor q = at::randn({batch, q_heads, 1, d}, opts);
      const at::Tensor last = at::full({batch}, filled - 1, opts.dtype(at::kLong));
      at::Tensor out = at::empty_like(q);
      const double s = median_seconds(repeats, out, [&](int) {
        out = fused_decode_attention(q, k, v, last, 0, at::Tensor(), 1.0 / std::sqrt(static_cast<double>(d)));
      }, 10);
      m.attention_GBps = 2.0 * batch * kv_heads * filled * d * k.element_size() / s / 1e9;
    }
  }
  if (cuda) {
    std::cerr << "calibrate: kernel replayed from a CUDA graph\n";
    const cudaDeviceProp* props = at::cuda::getDeviceProperties(0);
    m.memory_bytes = static_cast<int64_t>(props->totalGlobalMem);
    m.device_name = props->name;
    // A graph of many one-element kernels: its replay time over the kernel count.
    const int kernels = 200;
    at::Tensor x = at::zeros({1}, opts.dtype(at::kFloat));
    at::cuda::CUDAGraph graph;
    {
      const c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool(false, 0);
      const c10::cuda::CUDAStreamGuard guard(stream);
      graph.capture_begin();
      for (int i = 0; i < kernels; ++i) x.add_(1);
      graph.capture_end();
    }
    const double s = median_seconds(repeats, x, [&](int) { graph.replay(); }, 10);
    m.kernel_overhead_us = s / kernels * 1e6;
  }
#endif
  return m;
}

// One measured collective: `op` over `ranks` ranks, each sending `bytes_sent` (bytes_sent() of
// planner/plan/collectives.h of the input it holds), took `us` microseconds.
struct CollectivePoint {
  std::string op;
  int64_t ranks = 0;
  int64_t bytes_sent = 0;
  double us = 0;
};

// Where rank 0 of `calibrate --ranks` writes its points for the command that started the ranks.
constexpr const char* kCollectivesFile = "SHARDPLAN_CALIBRATE_COLLECTIVES";

// One rank of `calibrate --ranks N`: for every group size g in 2..N (ranks [0, g); the others wait
// at a barrier) and message size, times all_reduce, all_gather and reduce_scatter of the rank's
// input: on CUDA a CUDA graph of 20 calls replayed 10 times (the median replay), as a decode step
// runs them; on CPU (Gloo) 5 calls in a row, the median of 3. Rank 0 writes "op ranks bytes_sent
// us" lines to the file named by kCollectivesFile.
int collective_rank(const CalibrateOptions& o, const LaunchEnv& env, const std::string& out_path) {
  const bool cuda = o.device == "cuda";
  CommOptions c;
  c.backend = cuda ? CommBackend::kNccl : CommBackend::kGloo;
  c.rank = env.rank;
  c.world_size = env.world_size;
  c.local_rank = env.local_rank;
  c.master_addr = env.master_addr;
  c.master_port = env.master_port;
  // The ranks outside a group wait at a barrier while it is measured (large messages over Gloo
  // take a while).
  c.timeout = std::chrono::minutes(10);
  std::unique_ptr<Communicator> comm = make_communicator(c);
  std::vector<RankList> groups;
  for (int g = 2; g <= env.world_size; ++g) {
    RankList ranks(static_cast<size_t>(g));
    std::iota(ranks.begin(), ranks.end(), 0);
    groups.push_back(ranks);
  }
  comm->create_groups(groups);
  const at::Device device = cuda ? at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank)) : at::Device(at::kCPU);
  const at::ScalarType dtype = cuda ? at::kBFloat16 : at::kFloat;
  const std::vector<int64_t> sizes = o.quick ? std::vector<int64_t>{8 << 10, 256 << 10}
                                             : std::vector<int64_t>{8 << 10, 64 << 10, 256 << 10, 1 << 20, 8 << 20, 64 << 20};
  const std::pair<CollectiveOp, const char*> ops[] = {
      {CollectiveOp::kAllReduce, "all_reduce"}, {CollectiveOp::kAllGather, "all_gather"}, {CollectiveOp::kReduceScatter, "reduce_scatter"}};
  std::vector<CollectivePoint> points;
  for (const RankList& group : groups) {
    const int64_t g = static_cast<int64_t>(group.size());
    if (env.rank == 0) std::cerr << "calibrate: collectives over " << g << " ranks\n";
    if (env.rank < g) {
      for (const auto& [op, name] : ops) {
        for (const int64_t bytes : sizes) {
          // The input this rank holds: a multiple of g elements (reduce_scatter splits it).
          const int64_t element = static_cast<int64_t>(c10::elementSize(dtype));
          const int64_t numel = std::max<int64_t>(bytes / element / g, 1) * g;
          at::Tensor x = at::ones({numel}, at::TensorOptions().dtype(dtype).device(device));
          const std::string what = std::string("calibrate ") + name;
          const auto call = [&] {
            switch (op) {
              case CollectiveOp::kAllReduce: comm->all_reduce(x, group, what); break;
              case CollectiveOp::kAllGather: (void)comm->all_gather(x, 0, group, what); break;
              default: (void)comm->reduce_scatter(x, 0, group, what); break;
            }
          };
          double us = 0;
#if SHARDPLAN_CALIBRATE_CUDA
          if (cuda) {
            constexpr int kCalls = 20;
            for (int i = 0; i < 2; ++i) call();  // NCCL's set-up, eagerly
            at::cuda::device_synchronize();
            at::cuda::CUDAGraph graph;
            {
              const c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool(false, device.index());
              const c10::cuda::CUDAStreamGuard guard(stream);
              graph.capture_begin();
              for (int i = 0; i < kCalls; ++i) call();
              graph.capture_end();
            }
            std::vector<double> replays;
            for (int r = 0; r < 13; ++r) {
              const auto t0 = std::chrono::steady_clock::now();
              graph.replay();
              at::cuda::device_synchronize();
              if (r >= 3) replays.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            }
            std::sort(replays.begin(), replays.end());
            us = replays[replays.size() / 2] / kCalls * 1e6;
          }
#endif
          if (!cuda) {
            constexpr int kCalls = 5;
            call();
            std::vector<double> samples;
            for (int r = 0; r < 3; ++r) {
              const auto t0 = std::chrono::steady_clock::now();
              for (int i = 0; i < kCalls; ++i) call();
              samples.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            }
            std::sort(samples.begin(), samples.end());
            us = samples[1] / kCalls * 1e6;
          }
          points.push_back({name, g, bytes_sent(op, g, numel * element), us});
        }
      }
    }
    comm->barrier("calibrate: collectives over " + std::to_string(g) + " ranks done");
  }
  if (env.rank == 0) {
    std::ofstream out(out_path);
    for (const CollectivePoint& p : points) out << p.op << " " << p.ranks << " " << p.bytes_sent << " " << p.us << "\n";
    if (!out) throw std::runtime_error("cannot write " + out_path);
  }
  return 0;
}

// Starts `ranks` local ranks of this command line (collective_rank) and reads rank 0's points.
std::vector<CollectivePoint> measure_collectives(const CalibrateOptions& o) {
  char path[] = "/tmp/shardplan-calibrate-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) throw std::runtime_error("cannot create a temporary file in /tmp");
  ::close(fd);
  ::setenv(kCollectivesFile, path, 1);
  const int rc = run_local_ranks(o.ranks, o.argv);
  ::unsetenv(kCollectivesFile);
  std::vector<CollectivePoint> points;
  std::ifstream in(path);
  CollectivePoint p;
  while (in >> p.op >> p.ranks >> p.bytes_sent >> p.us) points.push_back(p);
  ::unlink(path);
  if (rc != 0) throw std::runtime_error("the collectives' ranks failed (exit code " + std::to_string(rc) + ")");
  return points;
}

std::string render(const Measured& m, const std::vector<CollectivePoint>& collectives, const Hardware& base,
                   const CalibrateOptions& o) {
  // The points of each (op, ranks), in the order measured.
  std::vector<std::pair<std::pair<std::string, int64_t>, std::vector<const CollectivePoint*>>> tables;
  for (const CollectivePoint& p : collectives) {
    if (tables.empty() || tables.back().first != std::make_pair(p.op, p.ranks)) tables.push_back({{p.op, p.ranks}, {}});
    tables.back().second.push_back(&p);
  }
  std::ostringstream out;
  char line[256];
  const auto field = [&](const char* key, double value, const char* note) {
    std::snprintf(line, sizeof line, "%s: %.6g", key, value);
    out << line << (note[0] ? std::string(std::max<size_t>(1, 32 - std::string(line).size()), ' ') + "# " + note : "")
        << "\n";
  };
  if (o.format == "json") {
    out << "{\"device\": \"" << o.device << "\", \"name\": \"" << (m.device_name.empty() ? o.device : m.device_name)
        << "\", \"memory_GBps\": " << m.memory_GBps << ", \"matmul_tflops\": " << m.matmul_tflops
        << ", \"matmul_n\": " << m.matmul_n << ", \"kernel_overhead_us\": " << m.kernel_overhead_us
        << ", \"eager_kernel_us\": " << m.eager_kernel_us << ", \"attention_GBps\": " << m.attention_GBps << ", \"gemm\": [";
    for (size_t i = 0; i < m.gemm.size(); ++i) {
      out << (i ? ", " : "") << "{\"class\": \"" << m.gemm[i].name << "\", \"rows\": " << m.gemm[i].rows
          << ", \"tflops\": " << m.gemm[i].tflops << ", \"weight_GBps\": " << m.gemm[i].weight_GBps << "}";
    }
    out << "], \"collectives\": [";
    for (size_t t = 0; t < tables.size(); ++t) {
      out << (t ? ", " : "") << "{\"op\": \"" << tables[t].first.first << "\", \"ranks\": " << tables[t].first.second
          << ", \"points\": [";
      for (size_t i = 0; i < tables[t].second.size(); ++i) {
        out << (i ? ", " : "") << "[" << tables[t].second[i]->bytes_sent << ", " << tables[t].second[i]->us << "]";
      }
      out << "]}";
    }
    out << "]}\n";
    return out.str();
  }
  out << "# Measured by `executor calibrate --device " << o.device << "`"
      << (m.device_name.empty() ? "" : " on " + m.device_name) << "; figures marked 'base' come from "
      << base.name << (tables.empty() ? " (one process cannot measure links and collectives; --ranks N does)"
                                        : " (the fallback for collectives not in the table below)")
      << ".\n";
  out << "name: " << (m.device_name.empty() ? base.name + " (calibrated)" : m.device_name) << "\n";
  field("memory_bytes", static_cast<double>(m.memory_bytes > 0 ? m.memory_bytes : base.memory_bytes),
        m.memory_bytes > 0 ? "measured: the device's memory" : "base");
  field("memory_usable_fraction", base.memory_usable_fraction, "base");
  field("memory_GBps", m.memory_GBps, "measured: a large copy, read + write");
  field("memory_efficiency", 1.0, "the measured rate is what a kernel reaches");
  field("bf16_tflops", m.matmul_tflops, "measured: square GEMMs");
  field("matmul_efficiency", 1.0, "the measured peak is reached by large GEMMs");
  field("link_GBps", base.link_GBps, "base");
  field("collective_latency_us", base.collective_latency_us, "base");
  field("kernel_overhead_us", m.kernel_overhead_us > 0 ? m.kernel_overhead_us : base.kernel_overhead_us,
        m.kernel_overhead_us > 0 ? "measured: a kernel replayed from a CUDA graph" : "base");
  field("eager_kernel_us", m.eager_kernel_us, "measured: a small kernel launched eagerly");
  if (m.attention_GBps > 0) {
    field("attention_GBps", m.attention_GBps, "measured: decode attention's KV-cache reads (8 x 4096 rows, 32 q / 8 KV heads)");
    field("attention_group", 4, "query heads per KV head where attention_GBps was measured");
  }
  field("kernels_per_module", 5, "the executor's kernels per module besides GEMMs (norm, RoPE + cache, attention, SiLU)");
  out << "# GEMM throughput by shape class: rows of activations times a 4096 x 14336 weight\n";
  out << "gemm:\n";
  for (const GemmClass& g : m.gemm) {
    std::snprintf(line, sizeof line, "  - {class: %s, rows: %lld, tflops: %.4g, weight_GBps: %.5g}\n", g.name,
                  static_cast<long long>(g.rows), g.tflops, g.weight_GBps);
    out << line;
  }
  if (!tables.empty()) {
    out << "# Collectives over local " << (o.device == "cuda" ? "GPUs, inside a CUDA graph" : "ranks (Gloo)")
        << ": [bytes each rank sends, microseconds] per call\n";
    out << "collectives:\n";
    for (const auto& [key, points] : tables) {
      out << "  - {op: " << key.first << ", ranks: " << key.second << ", points: [";
      for (size_t i = 0; i < points.size(); ++i) {
        std::snprintf(line, sizeof line, "%s[%lld, %.4g]", i ? ", " : "", static_cast<long long>(points[i]->bytes_sent),
                      points[i]->us);
        out << line;
      }
      out << "]}\n";
    }
  }
  return out.str();
}

}  // namespace

int calibrate_command(const CalibrateOptions& options) {
  try {
    if (options.device == "cuda" && !at::hasCUDA()) {
      std::cerr << "executor: error: --device cuda, but this build or machine has no CUDA\n";
      return 2;
    }
    const Hardware base = load_hardware(options.base);
    // A rank this command started for --ranks (only then: a launcher's RANK and WORLD_SIZE are
    // not ours to act on).
    if (const char* out = std::getenv(kCollectivesFile)) {
      const std::optional<LaunchEnv> env = launch_env_from_environment();
      if (!env || options.ranks < 2) {
        std::cerr << "executor: error: " << kCollectivesFile << " is set, but this is not a rank of calibrate --ranks\n";
        return 2;
      }
      return collective_rank(options, *env, out);
    }
    // NOTE: the ranks first, before this process takes a GPU's memory for its own measurements.
    const std::vector<CollectivePoint> collectives = options.ranks > 1 ? measure_collectives(options) : std::vector<CollectivePoint>{};
    const std::string text = render(measure(options), collectives, base, options);
    if (options.output.empty() || options.output == "-") {
      std::cout << text;
      return 0;
    }
    const std::string error = write_output_file(options.output, text);
    if (!error.empty()) {
      std::cerr << "executor: error: cannot write '" << options.output << "': " << error << "\n";
      return 2;
    }
    std::cerr << "calibrate: wrote " << options.output << "\n";
    return 0;
  } catch (const HardwareError& e) {
    std::cerr << "executor: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "executor: error: calibrate: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace shardplan
