// `executor bandwidth`: the device memory bandwidth the decode bound is computed with, measured
// as a large device-to-device copy (bytes read + bytes written over time), median of repeats.
// No libtorch in this header (the CLI's main includes spdlog).
#pragma once

#include <cstdint>
#include <string>

namespace shardplan {

struct BandwidthOptions {
  std::string device = "cpu";   // cpu | cuda
  int64_t bytes = int64_t{1} << 30;  // size of the buffer copied
  int repeats = 20;
  std::string format = "text";  // text | json
};

// Prints the measurement; returns the exit code (2: no such device, or too little memory).
int bandwidth_command(const BandwidthOptions& options);

}  // namespace shardplan
