// Hardware files (see hardware.h).
#include "planner/sweep/hardware.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
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
  return h;
}

}  // namespace shardplan
