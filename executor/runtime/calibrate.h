// `executor calibrate`: measures on the local device the figures the cost model of `planner
// sweep` needs (docs/sweep.md) and the bounds bench/performance.sh compares with, and writes them
// as a hardware file (hardware/*.yaml's format): memory bandwidth (a large copy), the dense
// matmul peak (square GEMMs of the dtype), GEMM throughput by shape class (rows of activations
// against a 4096 x 14336 weight: the decode, medium and prefill classes), and on CUDA the cost of a
// kernel replayed from a CUDA graph. What one process cannot measure (links and collectives) comes
// from the `--base` preset, marked as such in the file. No libtorch in this header.
#pragma once

#include <string>

namespace shardplan {

struct CalibrateOptions {
  std::string device = "cpu";    // cpu | cuda
  std::string base = "h200";     // preset or file for the figures not measured
  std::string output;            // -o: the hardware file (none: stdout)
  std::string format = "yaml";   // yaml | json
  bool quick = false;            // fewer and smaller measurements (tests)
};

// Returns the exit code (2: no such device, a bad --base, an output that cannot be written).
int calibrate_command(const CalibrateOptions& options);

}  // namespace shardplan
