// Rotary position embeddings as transformers computes them (default, linear and llama3 types).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "models/graph/rope_parameters.h"

namespace shardplan {

// inv_freq [head_dim / 2], float32, on `device`: exactly transformers' _compute_default_rope_parameters
// (1 / theta^(2i/d)), then _compute_linear_scaling_rope_parameters or _compute_llama3_parameters.
at::Tensor rope_inv_freq(const RopeParameters& rope, int64_t head_dim, at::Device device);

// cos and sin of every position [0, positions) for every head dimension: [positions, head_dim],
// float32 (the frequencies repeated twice, as transformers' `cat((freqs, freqs))`).
struct RopeTable {
  at::Tensor cos, sin;
};
RopeTable rope_table(const RopeParameters& rope, int64_t head_dim, int64_t positions, at::Device device);

// x [requests, heads, tokens, head_dim]; cos, sin [tokens, head_dim] (any dtype: cast to x's).
// x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x2, x1) of x's two halves.
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace shardplan
