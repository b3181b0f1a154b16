// RoPE (see rope.h).
#include "models/layers/rope.h"

#include <ATen/ATen.h>

#include <cmath>

namespace shardplan {
namespace {

// transformers' rtruediv (`scalar / tensor`) is reciprocal(tensor) * scalar; so is this, to give
// the same float32 bits.
at::Tensor scalar_over(double scalar, const at::Tensor& t) { return at::reciprocal(t) * scalar; }

}  // namespace

at::Tensor rope_inv_freq(const RopeParameters& r, int64_t dim, at::Device device) {
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
  // _compute_default_rope_parameters: 1.0 / (base ** (arange(0, dim, 2).float() / dim))
  const at::Tensor exponent = at::arange(0, dim, 2, f32.dtype(at::kLong)).to(at::kFloat) / dim;
  at::Tensor inv_freq = at::reciprocal(at::pow(r.theta, exponent));
  if (r.type == "linear") return inv_freq / r.factor;
  if (r.type != "llama3") return inv_freq;

  // _compute_llama3_parameters, operation for operation.
  const double old_context_len = static_cast<double>(r.original_max_positions);
  const double low_freq_wavelen = old_context_len / r.low_freq_factor;
  const double high_freq_wavelen = old_context_len / r.high_freq_factor;
  const at::Tensor wavelen = scalar_over(2 * M_PI, inv_freq);
  // wavelen < high_freq_wavelen: as is; wavelen > low_freq_wavelen: divided by factor
  at::Tensor inv_freq_llama = at::where(wavelen > low_freq_wavelen, inv_freq / r.factor, inv_freq);
  // in between: interpolated with a smooth factor
  const at::Tensor smooth_factor =
      (scalar_over(old_context_len, wavelen) - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
  const at::Tensor smoothed_inv_freq =
      (1 - smooth_factor) * inv_freq_llama / r.factor + smooth_factor * inv_freq_llama;
  const at::Tensor is_medium_freq =
      at::logical_not(wavelen < high_freq_wavelen).logical_and(at::logical_not(wavelen > low_freq_wavelen));
  return at::where(is_medium_freq, smoothed_inv_freq, inv_freq_llama);
}

RopeTable rope_table(const RopeParameters& rope, int64_t head_dim, int64_t positions, at::Device device) {
  // NOTE: computed on the CPU and copied, so every device runs with the same table.
  const at::Tensor inv_freq = rope_inv_freq(rope, head_dim, at::kCPU);
  const at::Tensor pos = at::arange(positions, at::TensorOptions().dtype(at::kLong)).to(at::kFloat);
  // transformers: inv_freq[:, None] @ position[None, :] (one product per element), transposed.
  const at::Tensor freqs = at::outer(pos, inv_freq);
  const at::Tensor emb = at::cat({freqs, freqs}, -1);
  // NOTE: attention_scaling is 1 for default, linear and llama3, so cos and sin are not scaled.
  return {emb.cos().to(device), emb.sin().to(device)};
}

at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  const at::Tensor rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos.to(x.scalar_type()) + rotated * sin.to(x.scalar_type());
}

}  // namespace shardplan
