// Tensor wrappers of the executor's CUDA kernels (models/layers/cuda/kernels.h). Used by the
// forwards on CUDA tensors when the build has the kernels (SHARDPLAN_CUDA_KERNELS); elsewhere the
// forwards run the ATen path, which the CPU reference tests compare with transformers. The
// kernels' results equal the ATen path's bits (RoPE, silu * up) or are within float rounding of
// scaled_dot_product_attention (decode attention); tests/models/fused_kernels_test.cc (gpu) checks
// both.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace shardplan {

// Whether the build has the kernels and `t` is a CUDA tensor of float32, float16 or bfloat16.
bool fused_kernels_for(const at::Tensor& t);

// Whether the kernels run on tensor cores for `t` (the decode attention, and the projections of 3
// to 8 rows): fused_kernels_for(t), float16 or bfloat16, and its GPU and the build at compute
// capability 8.0 or later. Otherwise they run on CUDA cores (1 to 4 rows for the projections).
bool fused_kernels_use_tensor_cores(const at::Tensor& t);

// RoPE on the q and k heads of a fused q/k/v projection `qkv` [batch, tokens, (q_heads + 2 *
// kv_heads) * head_dim] (last dim contiguous), rows `positions` [tokens] of `cos`/`sin`
// [positions, head_dim]; the rotated k and the v written into the caches [batch, kv_heads,
// capacity, head_dim] at `positions`; returns the rotated q [batch, q_heads, tokens, head_dim].
at::Tensor fused_rope_and_cache(const at::Tensor& qkv, int64_t q_heads, int64_t kv_heads, const at::Tensor& cos,
                                const at::Tensor& sin, const at::Tensor& positions, at::Tensor& k_cache,
                                at::Tensor& v_cache);

// Whether fused_decode_attention runs this head size and grouping (`head_map` undefined: grouped).
bool fused_decode_attention_supports(int64_t head_dim, int64_t q_heads, int64_t kv_heads, bool grouped);

// Attention of one query token per request: q [batch, q_heads, 1, head_dim] over the cache rows
// [max(0, end - window), end) of its request, end = last_position[request or 0] + 1 (a device
// int64 tensor of 1 or batch elements; window 0: none). `head_map` [q_heads] int64 gives each q
// head's KV head, undefined when q heads [g * group, (g + 1) * group) read KV head g. Only the
// filled rows are read, whatever the capacity. Returns [batch, q_heads, 1, head_dim].
// `splits` > 0 sets the key chunks per (request, KV head) (benchmarks; on CUDA cores at least
// capacity / 256), 0 lets the kernel pick. `first_row` [batch] int64 (device): each request reads from that row on
// (a ragged batch's left padding); undefined: from row 0.
at::Tensor fused_decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                                  const at::Tensor& last_position, int64_t window, const at::Tensor& head_map,
                                  double scale, int64_t splits = 0, const at::Tensor& first_row = at::Tensor());

// silu(x[..., :n]) * x[..., n:] of a fused gate/up output x [..., 2n] (last dim contiguous).
at::Tensor fused_silu_mul(const at::Tensor& x);

// Whether fused_linear runs x [..., k] @ weight [n, k].T: the build has the kernels, both are
// CUDA tensors of float16 or bfloat16, x has 1 to 4 rows (up to 8 on compute capability 8.0 and
// later) and is contiguous, the weight is
// contiguous, k is a multiple of 8 and both start 16-byte aligned.
bool fused_linear_supports(const at::Tensor& x, const at::Tensor& weight);
// x @ weight.T (+ bias [n]), as at::linear; with `into` ([..., n], contiguous) the product (and
// bias) is added to it in place and it is returned, as addmm_ into a residual. The decode step's
// projections at 1 to 8 rows: one pass over the weight at close to the memory's speed.
at::Tensor fused_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                        at::Tensor into = at::Tensor());

}  // namespace shardplan
