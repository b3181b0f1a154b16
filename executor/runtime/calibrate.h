// `executor calibrate`: measures on the local device the figures the cost model of `planner
// sweep` needs (docs/sweep.md) and the bounds bench/performance.sh compares with, and writes them
// as a hardware file (hardware/*.yaml's format): memory bandwidth (a large copy), the dense
// matmul peak (square GEMMs of the dtype), GEMM throughput by shape class (rows of activations
// against a 4096 x 14336 weight: the decode, medium and prefill classes), and on CUDA the cost of a
// kernel replayed from a CUDA graph. With `ranks` > 1 also the collectives: all_reduce,
// all_gather and reduce_scatter over every group size 2..ranks of local ranks (one GPU each on
// CUDA, inside a CUDA graph as a decode step runs them; Gloo processes on CPU), by message size,
// as the `collectives` table of the hardware file. What is not measured (the link figures of the
// latency + bytes / link fallback, all_to_all) comes from the `--base` preset, marked as such in
// the file. No libtorch in this header.
#pragma once

#include <string>
#include <vector>

namespace shardplan {

struct CalibrateOptions {
  std::string device = "cpu";    // cpu | cuda
  std::string base = "h200";     // preset or file for the figures not measured
  std::string output;            // -o: the hardware file (none: stdout)
  std::string format = "yaml";   // yaml | json
  bool quick = false;            // fewer and smaller measurements (tests)
  int ranks = 1;                 // > 1: also time the collectives over this many local ranks
  std::vector<std::string> argv; // this command line (the ranks run it again)
};

// Returns the exit code (2: no such device, a bad --base, an output that cannot be written).
int calibrate_command(const CalibrateOptions& options);

}  // namespace shardplan
