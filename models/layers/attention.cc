// Attention (see attention.h).
#include "models/layers/attention.h"

#include <ATen/ATen.h>

namespace shardplan {

at::Tensor heads_first(const at::Tensor& y, int64_t head_dim) {
  return y.view({y.size(0), y.size(1), -1, head_dim}).transpose(1, 2);
}

at::Tensor heads_merged(const at::Tensor& y) { return y.transpose(1, 2).reshape({y.size(0), y.size(2), -1}); }

at::Tensor attend(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values, const at::Tensor& allowed) {
  if (allowed.defined()) return at::scaled_dot_product_attention(q, keys, values, allowed);
  return at::scaled_dot_product_attention(q, keys, values);
}

at::Tensor attend_grouped(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values,
                          const at::Tensor& allowed) {
  if (keys.size(1) == q.size(1)) return attend(q, keys, values, allowed);
  const std::optional<at::Tensor> mask = allowed.defined() ? std::optional<at::Tensor>(allowed) : std::nullopt;
  return at::scaled_dot_product_attention(q, keys, values, mask, 0.0, false, std::nullopt, /*enable_gqa=*/true);
}

}  // namespace shardplan
