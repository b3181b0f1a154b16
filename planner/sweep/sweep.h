// `planner sweep`: every valid spec of a model on a world size, predicted by a first-principles
// cost model (docs/sweep.md) and ranked by throughput for the workload.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "planner/plan/plan.h"
#include "planner/sweep/hardware.h"

namespace shardplan {

struct SweepWorkload {
  int64_t batch = 32;
  int64_t prompt_tokens = 512;
  int64_t new_tokens = 128;
  int64_t images_per_request = 1;  // multimodal models only
};

// What the cost model predicts for one plan (per rank figures are the largest over the ranks).
struct Prediction {
  double ttft_ms = 0;             // prefill of the whole workload
  double decode_ms = 0;           // one decode step
  double tokens_per_s = 0;        // batch * new_tokens / (ttft + (new_tokens - 1) * decode)
  double tokens_per_s_per_gpu = 0;
  double tokens_per_s_per_request = 0;  // 1000 / decode_ms
  int64_t memory_bytes = 0;       // weights + KV cache + activations, the largest rank
  int64_t comm_bytes_decode = 0;  // bytes a rank sends per decode step (sum over collectives)
  bool fits = false;              // memory_bytes <= usable device memory
};

// The cost model (docs/sweep.md): per rank, the larger of memory time (weights and KV cache over
// bandwidth) and matmul time (FLOPs over achievable FLOP/s), plus each collective's latency and
// bytes over the link, plus kernel overheads per module.
Prediction predict(const Plan& plan, const Hardware& hardware);

struct SweepCandidate {
  std::string name;        // "dp2-tp4 attention tensor, mlp tensor, vocab tensor"
  std::string yaml;        // the spec (model.config relative to the spec's folder: `config_ref`)
  Prediction prediction;
  int64_t world = 0;
};

struct SweepOptions {
  std::string config_path;   // the model's config.json
  int64_t world = 1;
  SweepWorkload workload;
  std::string dtype = "bfloat16";
  Hardware hardware;
  // Where the candidates' spec files are written while they are checked (a temporary folder).
  std::string scratch_dir;
  // How the specs name the config (relative to where they are written); empty: the absolute path.
  std::string config_ref;
  std::function<void(int64_t done, int64_t total)> progress;  // may be empty
};

struct SweepResult {
  std::vector<SweepCandidate> ranked;  // valid and fitting, best predicted tokens/s first
  int64_t generated = 0;               // candidates written
  int64_t invalid = 0;                 // refused by planner check (spec checks or the binding)
  int64_t too_large = 0;               // valid, but not within the device's memory
};

// Enumerates meshes {dp, tp} with dp * tp = world (requests split over dp), and per module kind
// the modes that make sense: text modules tensor or data over tp, vocabulary modules tensor or
// replicate, an encoder data, tensor or replicate, a projector tensor or replicate, MoE tensor or
// expert (over tp, or over dp and tp), a shared expert replicate or tensor. Each candidate goes
// through `planner check` (spec checks and the binding of every rank); the valid ones are
// predicted and ranked. Throws ConfigError for the config, HardwareError never (given).
SweepResult run_sweep(const SweepOptions& options);

// The table of the top `top` candidates: text, CSV, JSON.
std::string sweep_table_text(const SweepResult& result, int64_t top);
std::string sweep_table_csv(const SweepResult& result, int64_t top);
std::string sweep_json(const SweepResult& result, int64_t top, const SweepOptions& options);
// Tokens/s per GPU against tokens/s per request, every candidate a point, the Pareto frontier
// drawn and the top `top` labelled.
std::string sweep_pareto_svg(const SweepResult& result, int64_t top, const std::string& title);

}  // namespace shardplan
