// The figures the cost model needs about one GPU and its links, from a small YAML file
// (hardware/*.yaml: datasheet presets; `executor calibrate` writes measured ones).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"

namespace shardplan {

struct Hardware {
  std::string name;
  int64_t memory_bytes = 0;
  double memory_usable_fraction = 0.9;
  double memory_GBps = 0;
  double memory_efficiency = 0.85;
  double bf16_tflops = 0;
  double matmul_efficiency = 0.7;
  double link_GBps = 0;
  double collective_latency_us = 10;
  double kernel_overhead_us = 2;    // per kernel replayed from a CUDA graph (a decode step)
  double kernels_per_module = 12;
  // Optional figures (`executor calibrate` writes them; absent: derived as noted).
  double eager_kernel_us = 0;       // per kernel launched eagerly (a prefill); 0: 3 x kernel_overhead_us
  // Decode attention: KV-cache bytes read per second with `attention_group` query heads per KV
  // head (the measured shape); 0: the memory bandwidth, whatever the grouping.
  double attention_GBps = 0;
  double attention_group = 1;
  struct GemmRate {
    int64_t rows = 0;
    double tflops = 0, weight_GBps = 0;
  };
  std::vector<GemmRate> gemm;       // by rows, ascending; empty: memory_GBps x efficiency, peak x efficiency
  // Measured collectives (`executor calibrate --ranks N`): the time of one `op` (all_reduce,
  // all_gather, reduce_scatter, all_to_all) over `ranks` GPUs by the bytes each rank sends (the
  // plan's bytes: planner/plan/collectives.h bytes_sent), inside a CUDA graph as a decode step
  // runs it. Empty, or no entry for an (op, ranks): collective_latency_us + bytes / link_GBps.
  struct CollectiveTimes {
    std::string op;
    int64_t ranks = 0;
    std::vector<std::pair<double, double>> points;  // (bytes sent, microseconds), ascending bytes
  };
  std::vector<CollectiveTimes> collectives;
};

// Seconds one collective `op` over `ranks` GPUs takes when each rank sends `bytes_sent`: the
// calibrated points of (op, ranks), linear in bytes between neighbours (below the first: its
// time; past the last: the last two points' rate); else latency + bytes / link bandwidth.
double collective_seconds(const Hardware& hardware, const std::string& op, int64_t ranks, int64_t bytes_sent);

// The rate a GEMM of `rows` activation rows reads its weight (bytes/s): interpolated in log(rows)
// between the calibrated shape classes, clamped at their ends; without them, the memory
// bandwidth times its efficiency.
double weight_read_rate(const Hardware& hardware, int64_t rows);
// The FLOP/s a GEMM of `rows` rows reaches: as weight_read_rate, from the classes' tflops;
// without them, the peak times the matmul efficiency.
double matmul_rate(const Hardware& hardware, int64_t rows);

class HardwareError : public Error {
 public:
  explicit HardwareError(const std::string& message) : Error(2, message) {}
};

// The bytes a rank may use on the device: memory_bytes x memory_usable_fraction.
int64_t usable_memory_bytes(const Hardware& hardware);

// `name_or_file`: a preset name (h100, h200: hardware/<name>.yaml of the source tree) or a path.
// HardwareError (exit 2) for an unknown name, an unreadable file or a missing / non-positive field.
Hardware load_hardware(const std::string& name_or_file);

}  // namespace shardplan
