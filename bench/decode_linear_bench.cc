// The decode step's projections (models/layers/cuda/ small_gemm through fused_linear) against
// cuBLAS (at::matmul) and the memory bound, on one GPU: y = x W^T for x of `rows` rows and the
// Llama-3-8B weights of one layer and the LM head, bfloat16. Prints microseconds a call (CUDA
// events around 20 calls back to back, median of 50 samples after warm-up), the weight bytes
// each reads and the rate; the copy rate of a 1 GiB device-to-device copy, measured in the same
// run, is the bound. --tp N: the slices one rank of N holds under tensor parallelism (q/k/v,
// gate/up and the head split by output features, o and down by input features). Built with the
// CUDA kernels; run on a GPU host:
//   build/models/decode_linear_bench [--tp N] [rows]...
#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/cuda_timing.h"
#include "models/layers/fused.h"

using shardplan::bench::median_us;

int main(int argc, char** argv) {
  if (!at::hasCUDA()) {
    std::fprintf(stderr, "decode_linear_bench: no CUDA device\n");
    return 2;
  }
  std::vector<int64_t> rows = {1, 4, 8};
  int64_t tp = 1;
  int first = 1;
  if (argc > 2 && std::string(argv[1]) == "--tp") {
    tp = std::atoll(argv[2]);
    first = 3;
  }
  if (tp < 1 || 4096 % tp != 0) {
    std::fprintf(stderr, "decode_linear_bench: --tp must divide 4096\n");
    return 2;
  }
  if (argc > first) {
    rows.clear();
    for (int i = first; i < argc; ++i) rows.push_back(std::atoll(argv[i]));
  }
  const auto opts = at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA);
  // The copy rate: read and write 1 GiB each (2 GiB moved).
  const at::Tensor src = at::empty({int64_t{1} << 29}, opts), dst = at::empty_like(src);
  const double copy_gbs = 2.0 * src.nbytes() / (median_us([&] { dst.copy_(src); }) * 1e3);
  std::printf("copy rate: %.0f GB/s; the slices of one rank of TP%lld\n\n", copy_gbs, static_cast<long long>(tp));
  std::printf("| rows | weight n x k | MB | kernel us | GB/s | x bound | cuBLAS us | GB/s |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  const std::vector<std::pair<int64_t, int64_t>> shapes = {  // qkv, o, gate/up, down, head
      {6144 / tp, 4096}, {4096, 4096 / tp}, {28672 / tp, 4096}, {4096, 14336 / tp}, {128256 / tp, 4096}};
  for (const int64_t r : rows) {
    for (const auto& [n, k] : shapes) {
      const at::Tensor x = at::randn({r, 1, k}, opts), w = at::randn({n, k}, opts) / 64;
      if (!shardplan::fused_linear_supports(x, w)) {
        std::printf("| %lld | %lld x %lld | (not run by the kernels) |\n", (long long)r, (long long)n, (long long)k);
        continue;
      }
      const double mb = 2.0 * n * k / 1e6, bound_us = mb / copy_gbs * 1e3;
      const double ours = median_us([&] { shardplan::fused_linear(x, w, at::Tensor()); });
      const double cublas = median_us([&] { at::matmul(x, w.t()); });
      std::printf("| %lld | %lld x %lld | %.1f | %.1f | %.0f | %.2f | %.1f | %.0f |\n", (long long)r, (long long)n,
                  (long long)k, mb, ours, mb / ours * 1e3, ours / bound_us, cublas, mb / cublas * 1e3);
    }
  }
  return 0;
}
