// Hardware files (see hardware.h).
#include "planner/sweep/hardware.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>

namespace shardplan {
namespace {

double positive(const YAML::Node& root, const std::string& file, const char* key) {
  const YAML::Node node = root[key];
  double value = 0;
  try {
    if (!node) throw HardwareError(file + ": missing '" + key + "'");
    value = node.as<double>();
  } catch (const YAML::Exception&) {
    throw HardwareError(file + ": '" + key + "' must be a number");
  }
  if (!(value > 0)) throw HardwareError(file + ": '" + key + "' must be positive");
  return value;
}

}  // namespace

int64_t usable_memory_bytes(const Hardware& hardware) {
  return static_cast<int64_t>(static_cast<double>(hardware.memory_bytes) * hardware.memory_usable_fraction);
}

Hardware load_hardware(const std::string& name_or_file) {
  std::string file = name_or_file;
  if (!std::filesystem::exists(file)) {
    std::string lower = name_or_file;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    const std::string preset = std::string(SHARDPLAN_HARDWARE_DIR) + "/" + lower + ".yaml";
    if (lower.find('/') != std::string::npos || !std::filesystem::exists(preset)) {
      throw HardwareError("hardware '" + name_or_file + "' is neither a file nor a preset (presets: h100, h200)");
    }
    file = preset;
  }
  YAML::Node root;
  try {
    root = YAML::LoadFile(file);
  } catch (const YAML::Exception& e) {
    throw HardwareError(file + ": not a readable YAML file: " + e.what());
  }
  if (!root.IsMap()) throw HardwareError(file + ": a hardware file is a mapping of figures");
  Hardware h;
  h.name = root["name"] ? root["name"].as<std::string>() : std::filesystem::path(file).stem().string();
  h.memory_bytes = static_cast<int64_t>(positive(root, file, "memory_bytes"));
  h.memory_usable_fraction = std::min(1.0, positive(root, file, "memory_usable_fraction"));
  h.memory_GBps = positive(root, file, "memory_GBps");
  h.memory_efficiency = std::min(1.0, positive(root, file, "memory_efficiency"));
  h.bf16_tflops = positive(root, file, "bf16_tflops");
  h.matmul_efficiency = std::min(1.0, positive(root, file, "matmul_efficiency"));
  h.link_GBps = positive(root, file, "link_GBps");
  h.collective_latency_us = positive(root, file, "collective_latency_us");
  h.kernel_overhead_us = positive(root, file, "kernel_overhead_us");
  h.kernels_per_module = positive(root, file, "kernels_per_module");
  if (root["eager_kernel_us"]) h.eager_kernel_us = positive(root, file, "eager_kernel_us");
  if (root["attention_GBps"]) h.attention_GBps = positive(root, file, "attention_GBps");
  if (root["attention_group"]) h.attention_group = positive(root, file, "attention_group");
  if (const YAML::Node gemm = root["gemm"]) {
    if (!gemm.IsSequence()) throw HardwareError(file + ": 'gemm' must be a list of {rows, tflops, weight_GBps}");
    for (const YAML::Node& g : gemm) {
      if (!g.IsMap()) throw HardwareError(file + ": every 'gemm' entry is a mapping {rows, tflops, weight_GBps}");
      Hardware::GemmRate r;
      r.rows = static_cast<int64_t>(positive(g, file, "rows"));
      r.tflops = positive(g, file, "tflops");
      r.weight_GBps = positive(g, file, "weight_GBps");
      h.gemm.push_back(r);
    }
    std::sort(h.gemm.begin(), h.gemm.end(), [](const auto& a, const auto& b) { return a.rows < b.rows; });
  }
  if (const YAML::Node list = root["collectives"]) {
    const std::string shape = "{op, ranks, points: [[bytes sent, microseconds], ...]}";
    if (!list.IsSequence()) throw HardwareError(file + ": 'collectives' must be a list of " + shape);
    for (const YAML::Node& c : list) {
      if (!c.IsMap() || !c["op"] || !c["points"] || !c["points"].IsSequence() || c["points"].size() == 0) {
        throw HardwareError(file + ": every 'collectives' entry is " + shape + " with at least one point");
      }
      Hardware::CollectiveTimes t;
      t.op = c["op"].as<std::string>();
      if (t.op != "all_reduce" && t.op != "all_gather" && t.op != "reduce_scatter" && t.op != "all_to_all") {
        throw HardwareError(file + ": collective op '" + t.op + "' is not all_reduce, all_gather, reduce_scatter or all_to_all");
      }
      t.ranks = static_cast<int64_t>(positive(c, file, "ranks"));
      if (t.ranks < 2) throw HardwareError(file + ": a collective's 'ranks' is at least 2");
      for (const YAML::Node& point : c["points"]) {
        double bytes = -1, us = -1;
        try {
          if (point.IsSequence() && point.size() == 2) {
            bytes = point[0].as<double>();
            us = point[1].as<double>();
          }
        } catch (const YAML::Exception&) {
        }
        if (!(bytes >= 0) || !(us > 0)) {
          throw HardwareError(file + ": " + t.op + " over " + std::to_string(t.ranks) +
                              ": a point is [bytes sent >= 0, microseconds > 0]");
        }
        t.points.emplace_back(bytes, us);
      }
      std::sort(t.points.begin(), t.points.end());
      for (size_t i = 1; i < t.points.size(); ++i) {
        if (t.points[i].first == t.points[i - 1].first) {
          throw HardwareError(file + ": " + t.op + " over " + std::to_string(t.ranks) + ": two points at " +
                              std::to_string(static_cast<int64_t>(t.points[i].first)) + " bytes");
        }
      }
      h.collectives.push_back(std::move(t));
    }
  }
  return h;
}

double collective_seconds(const Hardware& hardware, const std::string& op, int64_t ranks, int64_t bytes_sent) {
  const double bytes = static_cast<double>(bytes_sent);
  for (const Hardware::CollectiveTimes& t : hardware.collectives) {
    if (t.op != op || t.ranks != ranks) continue;
    const auto& p = t.points;
    if (p.size() == 1 || bytes <= p.front().first) return p.front().second * 1e-6;
    size_t i = 1;
    while (i + 1 < p.size() && bytes > p[i].first) ++i;
    // Between p[i - 1] and p[i], or past the last along the last two points' rate (never falling).
    const double slope = std::max(0.0, (p[i].second - p[i - 1].second) / (p[i].first - p[i - 1].first));
    const double us = p[i - 1].second + (bytes - p[i - 1].first) * slope;
    return std::max(us, p.front().second) * 1e-6;
  }
  return hardware.collective_latency_us * 1e-6 + bytes / (hardware.link_GBps * 1e9);
}

namespace {

// `field` of the GEMM classes at `rows`, linear in log(rows) between neighbours, clamped.
double interpolate(const std::vector<Hardware::GemmRate>& gemm, int64_t rows, double Hardware::GemmRate::*field) {
  if (rows <= gemm.front().rows) return gemm.front().*field;
  if (rows >= gemm.back().rows) return gemm.back().*field;
  for (size_t i = 1; i < gemm.size(); ++i) {
    if (rows > gemm[i].rows) continue;
    const double a = std::log(static_cast<double>(gemm[i - 1].rows)), b = std::log(static_cast<double>(gemm[i].rows));
    const double t = (std::log(static_cast<double>(rows)) - a) / std::max(b - a, 1e-12);
    return gemm[i - 1].*field + t * (gemm[i].*field - gemm[i - 1].*field);
  }
  return gemm.back().*field;
}

}  // namespace

double weight_read_rate(const Hardware& hardware, int64_t rows) {
  if (hardware.gemm.empty()) return hardware.memory_GBps * 1e9 * hardware.memory_efficiency;
  return interpolate(hardware.gemm, rows, &Hardware::GemmRate::weight_GBps) * 1e9;
}

double matmul_rate(const Hardware& hardware, int64_t rows) {
  if (hardware.gemm.empty()) return hardware.bf16_tflops * 1e12 * hardware.matmul_efficiency;
  return interpolate(hardware.gemm, rows, &Hardware::GemmRate::tflops) * 1e12;
}

}  // namespace shardplan
