// Device memory bandwidth by a large copy (see bandwidth.h).
#include "executor/runtime/bandwidth.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <vector>

namespace shardplan {
namespace {

// Waits for the copy: reading one element back blocks until the device stream is done.
// NOTE: needs no CUDA headers, so the same code serves CPU and CUDA devices.
void synchronize(const at::Tensor& t) { (void)t.view({-1})[t.numel() - 1].item<float>(); }

}  // namespace

int bandwidth_command(const BandwidthOptions& options) {
  try {
    const bool cuda = options.device == "cuda";
    if (cuda && !at::hasCUDA()) {
      std::cerr << "executor: error: --device cuda, but this build or machine has no CUDA\n";
      return 2;
    }
    const at::Device device = cuda ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
    const int64_t n = std::max<int64_t>(options.bytes / 4, 1);
    at::Tensor src = at::rand({n}, at::TensorOptions().dtype(at::kFloat).device(device));
    at::Tensor dst = at::empty_like(src);
    for (int i = 0; i < 3; ++i) dst.copy_(src);  // warm-up
    synchronize(dst);
    std::vector<double> seconds;
    for (int i = 0; i < options.repeats; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      dst.copy_(src);
      synchronize(dst);
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(seconds.begin(), seconds.end());
    const double median = seconds[seconds.size() / 2];
    // NOTE: a copy reads and writes every byte: 2 * bytes moved, as device bandwidth is quoted.
    const double gbps = 2.0 * static_cast<double>(n) * 4 / median / 1e9;
    if (options.format == "json") {
      std::printf("{\"device\": \"%s\", \"bytes\": %lld, \"median_s\": %.9f, \"GBps\": %.3f}\n",
                  options.device.c_str(), static_cast<long long>(n * 4), median, gbps);
    } else {
      std::printf("device %s: copy of %lld bytes, median %.3f ms over %d repeats: %.1f GB/s (read + write)\n",
                  options.device.c_str(), static_cast<long long>(n * 4), median * 1e3,
                  options.repeats, gbps);
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "executor: error: bandwidth: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace shardplan
