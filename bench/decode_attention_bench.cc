// The decode attention kernel (models/layers/cuda/) against scaled_dot_product_attention and the
// memory bound, on one GPU: one query token per request over a KV cache filled to `filled` of
// `capacity` rows, bfloat16 (the tensor-core kernel). Prints microseconds per call (CUDA events
// around 20 calls back to back, median of 50 samples after warm-up), the KV bytes each must read
// and the rate. Built with the CUDA kernels; run on a GPU host:
//   build/models/decode_attention_bench [batch q_heads kv_heads head_dim filled capacity]...
#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/cuda_timing.h"
#include "models/layers/fused.h"

using shardplan::bench::median_us;

int main(int argc, char** argv) {
  if (!at::hasCUDA()) {
    std::fprintf(stderr, "decode_attention_bench: no CUDA device\n");
    return 2;
  }
  std::vector<std::vector<int64_t>> shapes = {
      {1, 32, 8, 128, 192, 192}, {32, 32, 8, 128, 192, 192}, {8, 32, 8, 128, 4128, 4160}, {8, 32, 8, 128, 1000, 4160}};
  if (argc > 1 && (argc - 1) % 6 == 0) {
    shapes.clear();
    for (int i = 1; i < argc; i += 6) {
      std::vector<int64_t> s;
      for (int j = 0; j < 6; ++j) s.push_back(std::atoll(argv[i + j]));
      shapes.push_back(s);
    }
  }
  const auto opts = at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA);
  std::printf("| batch | q/kv heads | head dim | filled / capacity | KV MB read | kernel us | GB/s | SDPA us | us by splits |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& s : shapes) {
    const int64_t b = s[0], qh = s[1], kvh = s[2], d = s[3], filled = s[4], cap = s[5];
    const at::Tensor q = at::randn({b, qh, 1, d}, opts);
    const at::Tensor k = at::randn({b, kvh, cap, d}, opts), v = at::randn({b, kvh, cap, d}, opts);
    const at::Tensor last = at::full({1}, filled - 1, at::TensorOptions().dtype(at::kLong).device(at::kCUDA));
    const double scale = 1 / std::sqrt(double(d));
    const double fused = median_us([&] { shardplan::fused_decode_attention(q, k, v, last, 0, at::Tensor(), scale); });
    std::string by_splits;
    for (int64_t splits : {1, 2, 4, 8, 16, 32, 64}) {
      const double t = median_us([&] { shardplan::fused_decode_attention(q, k, v, last, 0, at::Tensor(), scale, splits); });
      by_splits += " " + std::to_string(splits) + ":" + std::to_string(static_cast<int>(t));
    }
    const at::Tensor mask = at::arange(cap, at::TensorOptions().dtype(at::kLong).device(at::kCUDA)).lt(filled).view({1, cap});
    const double sdpa = median_us([&] {
      at::scaled_dot_product_attention(q, k, v, mask, 0.0, false, std::nullopt, /*enable_gqa=*/true);
    });
    const double mb = 2.0 * b * kvh * filled * d * 2 / 1e6;
    std::printf("| %lld | %lld/%lld | %lld | %lld / %lld | %.1f | %.1f | %.0f | %.1f |%s |\n", (long long)b,
                (long long)qh, (long long)kvh, (long long)d, (long long)filled, (long long)cap, mb, fused, mb / fused * 1e3,
                sdpa, by_splits.c_str());
  }
  return 0;
}
