// What `executor run` prints (spec-format.md §6), as text or JSON; no libtorch here.
//
// Definitions (as vLLM's serving benchmark reports them): every request gets new_tokens tokens,
// the first from prefill; time to first token (TTFT) runs from the start of prefill to that
// request's first token; time per output token (TPOT) is (last token - first token) /
// (new_tokens - 1), 0 when new_tokens is 1; duration is from the start of prefill to the last
// token of the slowest rank; output tokens/s = requests * new_tokens / duration. Requests of a
// batch run in lockstep, so the spread of TTFT and TPOT is the spread between ranks. With
// new_tokens 0 only prefill runs: duration is its time, TTFT and TPOT are 0.
//
// JSON keys: spec, name, model_type, dtype, device, world_size, mesh ({axis: size}), requests,
// prompt_tokens, image_tokens, images_per_request, new_tokens, input_tokens, output_tokens, duration_s, output_tokens_per_s,
// ttft_ms {mean, median, p99}, tpot_ms {mean, median, p99}, weight_bytes_read (per rank),
// cuda_graphs ({decode: bool, capture_ms, encoders: graphs, encoder_capture_ms}), decode_batch (rank 0's batch per decode step), time_by_kind_s (with --profile only: {kind: seconds, ..., collectives: seconds}, mean over ranks),
// generated_token_ids (per request, in request order), and with --verify, verify {max_abs_diff,
// worst_step, worst_request, logits_scale, rtol, tolerance, tokens_identical, token_mismatches,
// passed}.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace shardplan {

struct LatencySummary {
  double mean = 0, median = 0, p99 = 0;  // seconds
};
// Mean, median and 99th percentile (linear interpolation between order statistics, as numpy's
// default); all 0 for no values.
LatencySummary summarize(std::vector<double> values);

struct VerifySummary {
  double relative_error = 0;  // ||sharded - reference|| / ||reference||: what passes or fails
  double max_abs_diff = 0;
  int64_t worst_step = 0, worst_request = 0;
  double logits_scale = 0;
  double rtol = 0;
  double tolerance = 0;
  bool tokens_identical = true;
  int64_t token_mismatches = 0;
  bool passed = true;
};

struct RunReport {
  std::string spec_file;
  std::string name;
  std::string model_type;
  std::string dtype;                 // float32 | bfloat16 | float16
  std::string device;                // cpu | cuda
  std::vector<std::pair<std::string, int64_t>> mesh;
  int64_t world_size = 1;
  int64_t requests = 0;
  int64_t prompt_tokens = 0;   // text tokens per request
  int64_t image_tokens = 0;    // tokens the images add per request (llava), in front of the text
  int64_t images_per_request = 0;
  int64_t new_tokens = 0;
  double duration_s = 0;
  LatencySummary ttft, tpot;
  std::vector<uint64_t> weight_bytes_read;      // per rank
  // Per rank, before --verify: on CUDA the device memory the caching allocator peaked at; on the
  // CPU the process's peak resident set.
  std::vector<int64_t> peak_memory_bytes;
  double load_s = 0;                            // reading the weights and placing them (rank 0)
  bool decode_graph = false;                    // decode steps replayed a CUDA graph (rank 0)
  double graph_capture_s = 0;                   // its captures (rank 0): at start-up, and at each smaller
                                                // batch size the first time requests leaving reach it
  int64_t encoder_graphs = 0;                   // encoder-stream modules captured as CUDA graphs (rank 0)
  double encoder_capture_s = 0;                 // their captures (rank 0), at start-up
  // Rank 0's batch per decode step: falls as requests finish and leave it (Engine::generate).
  std::vector<int64_t> decode_batch;
  // Seconds per module kind of the module kinds the model has, then "collectives" (the plan's
  // collectives, those inside a module such as MoE's all_to_all included), mean over the ranks.
  std::vector<std::pair<std::string, double>> time_by_kind_s;
  std::vector<std::vector<int64_t>> generated;  // per request
  std::vector<double> request_ttft_s, request_tpot_s;  // per request
  std::optional<VerifySummary> verify;

  int64_t input_tokens() const { return requests * (prompt_tokens + image_tokens); }
  int64_t output_tokens() const { return requests * new_tokens; }
  double output_tokens_per_s() const { return duration_s > 0 ? output_tokens() / duration_s : 0; }
};

std::string report_text(const RunReport& report);
nlohmann::json report_json(const RunReport& report);

}  // namespace shardplan
