// The norms of every family, as transformers computes them.
#pragma once

#include <ATen/core/Tensor.h>

namespace shardplan {

// LlamaRMSNorm (and Qwen2's, Mixtral's): in float32, x * rsqrt(mean(x^2) + eps), back to x's
// dtype, times weight. On CUDA one fused kernel (the weight applied before the last rounding).
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// nn.LayerNorm over the last dimension (CLIP, Whisper); `bias` may be undefined.
at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps);

}  // namespace shardplan
