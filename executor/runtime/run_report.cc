// Latency summaries and the text / JSON report of `executor run` (see run_report.h).
#include "executor/runtime/run_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

namespace shardplan {
namespace {

double percentile(const std::vector<double>& sorted, double p) {
  const double pos = p / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

std::string fixed(double value, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, value);
  return buf;
}

std::string sci(double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g", value);
  return buf;
}

std::string latency_line(const LatencySummary& s) {
  return "mean " + fixed(s.mean * 1e3, 3) + ", median " + fixed(s.median * 1e3, 3) + ", p99 " + fixed(s.p99 * 1e3, 3);
}

nlohmann::json latency_json(const LatencySummary& s) {
  return {{"mean", s.mean * 1e3}, {"median", s.median * 1e3}, {"p99", s.p99 * 1e3}};
}

std::string mesh_text(const RunReport& r) {
  std::string out;
  for (const auto& [name, size] : r.mesh) out += (out.empty() ? "" : ", ") + name + ": " + std::to_string(size);
  return "{" + out + "}";
}

}  // namespace

LatencySummary summarize(std::vector<double> values) {
  LatencySummary s;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  s.median = percentile(values, 50);
  s.p99 = percentile(values, 99);
  return s;
}

std::string report_text(const RunReport& r) {
  std::string out;
  out += "run: " + r.name + " (" + r.spec_file + ")\n";
  out += "model: " + r.model_type + ", " + r.dtype + " on " + r.device + "; mesh " + mesh_text(r) + ", world size " +
         std::to_string(r.world_size) + "\n";
  out += "requests: " + std::to_string(r.requests) + "\n";
  const std::string per_request = r.image_tokens > 0 ? std::to_string(r.prompt_tokens) + " text + " +
                                                          std::to_string(r.image_tokens) + " image (" +
                                                          std::to_string(r.images_per_request) + " images) per request"
                                                    : std::to_string(r.prompt_tokens) + " per request";
  out += "tokens: " + std::to_string(r.input_tokens()) + " input (" + per_request + "), " + std::to_string(r.output_tokens()) + " output (" + std::to_string(r.new_tokens) +
         " per request)\n";
  out += "duration: " + fixed(r.duration_s, 4) + " s\n";
  if (r.decode_graph) out += "decode step: CUDA graph, captured in " + fixed(r.graph_capture_s * 1e3, 1) + " ms\n";
  if (r.encoder_graphs > 0) {
    out += "encoders: " + std::to_string(r.encoder_graphs) + " CUDA graph" + (r.encoder_graphs > 1 ? "s" : "") +
           " (one per module and item count), captured in " + fixed(r.encoder_capture_s * 1e3, 1) + " ms\n";
  }
  if (!r.decode_batch.empty() && r.decode_batch.front() != r.decode_batch.back()) {
    std::string sizes;
    for (size_t i = 0; i < r.decode_batch.size(); ++i) {
      if (i == 0 || r.decode_batch[i] != r.decode_batch[i - 1]) sizes += (i == 0 ? "" : ", ") + std::to_string(r.decode_batch[i]);
    }
    out += "decode batch: " + sizes + " (finished requests leave it)\n";
  }
  out += "output tokens/s: " + fixed(r.output_tokens_per_s(), 1) + "\n";
  out += "time to first token (ms): " + latency_line(r.ttft) + "\n";
  out += "time per output token (ms): " + latency_line(r.tpot) + "\n";
  std::string bytes;
  for (size_t i = 0; i < r.weight_bytes_read.size(); ++i) {
    bytes += (i ? ", " : "") + std::to_string(r.weight_bytes_read[i]);
  }
  out += "weight bytes read per rank: " + bytes + "\n";
  char load[96];
  std::snprintf(load, sizeof load, "loading the weights (rank 0): %.2f s\n", r.load_s);
  out += load;
  std::string peaks;
  for (size_t i = 0; i < r.peak_memory_bytes.size(); ++i) {
    peaks += (i ? ", " : "") + fixed(static_cast<double>(r.peak_memory_bytes[i]) / (1 << 20), 1);
  }
  if (!peaks.empty()) out += std::string("peak memory per rank (MiB, ") + (r.device == "cuda" ? "device" : "process") +
                             "): " + peaks + "\n";
  if (!r.time_by_kind_s.empty()) {
    std::string kinds;
    for (const auto& [kind, seconds] : r.time_by_kind_s) {
      kinds += (kinds.empty() ? "" : ", ") + kind + " " + fixed(seconds, 4);
    }
    out += "time by module kind (s, mean over ranks): " + kinds + "\n";
  }
  if (r.verify) {
    const VerifySummary& v = *r.verify;
    out += "verify: relative error of the logits against the unsharded run " + sci(v.relative_error) +
           " (tolerance " + sci(v.tolerance) + "); largest difference " + sci(v.max_abs_diff) + " (step " +
           std::to_string(v.worst_step) + ", request " + std::to_string(v.worst_request) + ", logits scale " +
           sci(v.logits_scale) + "); tokens identical: " +
           (v.tokens_identical ? "yes" : "no (" + std::to_string(v.token_mismatches) + " differ)") + "; " +
           (v.passed ? "PASSED" : "FAILED") + "\n";
  }
  return out;
}

nlohmann::json report_json(const RunReport& r) {
  nlohmann::json mesh = nlohmann::json::object();
  for (const auto& [name, size] : r.mesh) mesh[name] = size;
  nlohmann::json j = {
      {"spec", r.spec_file},
      {"name", r.name},
      {"model_type", r.model_type},
      {"dtype", r.dtype},
      {"device", r.device},
      {"world_size", r.world_size},
      {"mesh", mesh},
      {"requests", r.requests},
      {"prompt_tokens", r.prompt_tokens},
      {"image_tokens", r.image_tokens},
      {"images_per_request", r.images_per_request},
      {"new_tokens", r.new_tokens},
      {"input_tokens", r.input_tokens()},
      {"output_tokens", r.output_tokens()},
      {"duration_s", r.duration_s},
      {"output_tokens_per_s", r.output_tokens_per_s()},
      {"ttft_ms", latency_json(r.ttft)},
      {"tpot_ms", latency_json(r.tpot)},
      {"weight_bytes_read", r.weight_bytes_read},
      {"load_s", r.load_s},
      {"peak_memory_bytes", r.peak_memory_bytes},
      {"cuda_graphs", {{"decode", r.decode_graph}, {"capture_ms", r.graph_capture_s * 1e3},
                       {"encoders", r.encoder_graphs}, {"encoder_capture_ms", r.encoder_capture_s * 1e3}}},
      {"decode_batch", r.decode_batch},
      {"generated_token_ids", r.generated},
  };
  if (!r.time_by_kind_s.empty()) {
    nlohmann::json kinds = nlohmann::json::object();
    for (const auto& [kind, seconds] : r.time_by_kind_s) kinds[kind] = seconds;
    j["time_by_kind_s"] = kinds;
  }
  if (r.verify) {
    const VerifySummary& v = *r.verify;
    j["verify"] = {{"relative_error", v.relative_error}, {"max_abs_diff", v.max_abs_diff}, {"worst_step", v.worst_step},
                   {"worst_request", v.worst_request}, {"logits_scale", v.logits_scale},
                   {"rtol", v.rtol}, {"tolerance", v.tolerance},
                   {"tokens_identical", v.tokens_identical}, {"token_mismatches", v.token_mismatches},
                   {"passed", v.passed}};
  }
  return j;
}

}  // namespace shardplan
