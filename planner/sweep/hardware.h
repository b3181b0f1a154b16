// The figures the cost model needs about one GPU and its links, from a small YAML file
// (hardware/*.yaml: datasheet presets; `executor calibrate` will write measured ones).
#pragma once

#include <cstdint>
#include <string>

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
  double kernel_overhead_us = 2;
  double kernels_per_module = 12;
};

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
