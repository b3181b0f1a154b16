// Timing of one GPU operation for the kernel benchmarks (decode_attention_bench,
// decode_linear_bench): microseconds a call, the median of 50 samples of 20 calls queued back to
// back after 5 warm-up calls (as in a decode step's CUDA graph, where one kernel's launch hides
// behind the one before it), by CUDA events on the current stream.
#pragma once

#include <ATen/cuda/CUDAEvent.h>

#include <algorithm>
#include <functional>
#include <vector>

namespace shardplan::bench {

inline double median_us(const std::function<void()>& fn) {
  constexpr int kWarmUp = 5, kSamples = 50, kBackToBack = 20;
  for (int i = 0; i < kWarmUp; ++i) fn();
  std::vector<double> us;
  for (int i = 0; i < kSamples; ++i) {
    at::cuda::CUDAEvent a(cudaEventDefault), b(cudaEventDefault);
    a.record();
    for (int j = 0; j < kBackToBack; ++j) fn();
    b.record();
    b.synchronize();
    us.push_back(a.elapsed_time(b) * 1e3 / kBackToBack);
  }
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

}  // namespace shardplan::bench
