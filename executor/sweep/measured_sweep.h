// `executor sweep DIR`: runs the specs `planner sweep -o DIR` wrote (rank-01.yaml, ...), each
// through `executor run --format json` in its own process, and reports measured against predicted
// (docs/sweep.md): Spearman rank correlation of tokens/s, top-1 regret, the median and 90th
// percentile of the absolute relative errors of decode ms per step and of time to the first
// token, and the memory error. Writes a table (text, CSV, JSON) and two SVG charts. No libtorch
// here (the runs are child processes).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace shardplan {

struct MeasuredSweepOptions {
  // planner sweep's output folders (sweep.json and the rank-NN.yaml specs). With several (one per
  // model and workload), each folder's results go to OUTPUT/<folder name> and the accuracy over
  // every point to OUTPUT (required then).
  std::vector<std::string> dirs;
  std::string device = "cpu";
  std::string checkpoint;   // for specs without model.checkpoint; empty: a random one, made once
  std::string output;       // results folder; empty: DIR/measured (one folder only)
  int64_t top = 0;          // run the first `top` specs; 0: all of them
  // Take the report of an earlier run of the same spec text in the results folder instead of
  // running it again (an interrupted sweep, or new predictions against the same measurements).
  bool resume = false;
  std::string executor;     // the executor binary the runs use
};

// One plan: what the sweep predicted and what the run measured.
struct MeasuredPlan {
  int64_t rank = 0;
  std::string sweep;        // the sweep's folder name when several were run; empty otherwise
  std::string plan;
  int64_t world = 1;
  double predicted_ttft_ms = 0, predicted_decode_ms = 0, predicted_tokens_per_s = 0;
  int64_t predicted_memory_bytes = 0;
  bool ran = false;
  std::string error;        // why the run failed (its last stderr lines)
  double ttft_ms = 0, decode_ms = 0, tokens_per_s = 0;
  int64_t peak_memory_bytes = 0;
};

// How right the prediction was over the plans that ran.
struct SweepAccuracy {
  int64_t points = 0;
  std::optional<double> spearman;        // of tokens/s; needs 2 points
  // (best measured - measured of the predicted best) / best measured, within one sweep (plans of one
  // workload are the alternatives); over several sweeps the largest. `regret_sweeps`: the sweeps
  // with at least 2 plans that ran (0: no regret could be measured).
  double top1_regret = 0;
  int64_t regret_sweeps = 0;
  double decode_error_median = 0, decode_error_p90 = 0;  // |predicted - measured| / measured
  double ttft_error_median = 0, ttft_error_p90 = 0;
  double memory_error_median = 0, memory_error_max = 0;
};

// Spearman's rank correlation (ties get their mean rank); nullopt for fewer than 2 values or a
// constant list.
std::optional<double> spearman(const std::vector<double>& a, const std::vector<double>& b);
// The q-quantile (0..1) of `values`, linear between order statistics; 0 for none.
double quantile(std::vector<double> values, double q);
SweepAccuracy sweep_accuracy(const std::vector<MeasuredPlan>& plans);

// Returns the exit code: 0 when at least one plan ran, 2 for a folder without planner sweep's
// output, several folders without --output, an unwritable results folder, or no plan that ran.
int measured_sweep_command(const MeasuredSweepOptions& options);

}  // namespace shardplan
