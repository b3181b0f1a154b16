// Multi-head attention on one rank's heads: the one implementation every family uses
// (scaled_dot_product_attention, on every device), and the reshapes around it.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace shardplan {

// [b, t, heads * d] -> [b, heads, t, d] and back.
at::Tensor heads_first(const at::Tensor& y, int64_t head_dim);
at::Tensor heads_merged(const at::Tensor& y);

// Softmax attention of q [b, heads, t, d] over keys and values [b, heads, L, d], scaled by
// d^-0.5; `allowed` [t, L] bool says which keys each query reads (undefined: every key).
at::Tensor attend(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values, const at::Tensor& allowed);

// As attend, with fewer KV heads than q heads (grouped-query attention): q head i reads KV head
// i / (q heads / KV heads), without copying the keys and values per q head.
at::Tensor attend_grouped(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values,
                          const at::Tensor& allowed);

}  // namespace shardplan
