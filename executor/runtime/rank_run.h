// One rank's whole `executor run`: load its slices, bind the plan, warm up, run the workload,
// gather tokens, timings (and with --verify the logits) on rank 0, and there build the report,
// running the unsharded reference for --verify. The same code runs one rank per process (the CLI)
// or one per thread over an in-process communicator (the tests).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <optional>
#include <vector>

#include "executor/comm/communicator.h"
#include "executor/runtime/request_file.h"
#include "executor/runtime/run_report.h"
#include "planner/plan/plan.h"

namespace shardplan {

struct RankRunOptions {
  at::Device device = at::kCPU;  // this rank's device (cuda:LOCAL_RANK under CUDA)
  bool verify = false;
  uint64_t seed = 0;             // of the prompts (workload.h)
  bool warm_up = true;           // run prefill and one decode step untimed first
  bool profile = false;          // time by module kind (EngineOptions::profile)
  bool cuda_graphs = true;       // EngineOptions::cuda_graphs
  std::string logits_out;        // rank 0 writes the run's logits here (.npy)
  bool allow_links_outside_checkpoint = false;  // Checkpoint::open's allow_links_outside
  // --requests: the prompts (else the seeded ones), of any lengths (a ragged batch, left-padded),
  // and how each request's tokens are chosen (empty or all greedy: the argmax).
  std::vector<std::vector<int64_t>> prompt_ids;
  std::vector<SamplingParams> sampling;
  // With them (--requests) the run stops once every request has ended, where every rank holds
  // every request's logits (TokenChooser::finished).
  std::vector<RequestEnd> ends;
  std::vector<int64_t> eos_ids;
  // --requests' images (llava: [images, channels, size, size]) and audio features (whisper:
  // [requests, mel bins, frames]) in place of the synthetic ones; undefined: synthetic.
  at::Tensor pixels, audio;
  bool progress = false;         // this rank shows the loading and the run's progress on stderr
};

// The dtype of a spec's model.dtype. float16 on the CPU is a RunError (kUsage): libtorch's CPU
// float16 matmul is a slow fallback, and the CPU runs are for correctness.
at::ScalarType run_dtype(DType dtype, at::Device device);

// Runs the spec's workload as `rank` of `comm` (null for a world of one). Returns the report on
// rank 0, nullopt elsewhere. Throws RunError, WeightsError, CommError.
std::optional<RunReport> run_rank(const Plan& plan, int64_t rank, Communicator* comm, const RankRunOptions& options);

}  // namespace shardplan
