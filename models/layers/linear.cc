// Column- and row-parallel linears (see linear.h).
#include "models/layers/linear.h"

#include <ATen/ATen.h>

#include "models/layers/fused.h"

namespace shardplan {
namespace {

at::Tensor bias_of(const ModuleWeights& w, ParamKey key) {
  key.bias = true;
  const TensorShard* shard = w.find(key);
  return shard ? shard->tensor : at::Tensor();
}

}  // namespace

// NOTE: a decode step's few rows go through the project's GEMV kernel where it runs them
// (fused.h): cuBLAS reads the weights at about 79% of the memory's speed at these shapes.
at::Tensor ColumnParallelLinear::forward(const at::Tensor& x) const {
  if (fused_linear_supports(x, weight)) return fused_linear(x, weight, bias);
  return at::linear(x, weight, bias);
}

at::Tensor RowParallelLinear::forward(const at::Tensor& x, bool adds_bias) const {
  if (fused_linear_supports(x, weight)) return fused_linear(x, weight, adds_bias ? bias : at::Tensor());
  return at::linear(x, weight, adds_bias ? bias : at::Tensor());
}

at::Tensor RowParallelLinear::add_into(at::Tensor residual, const at::Tensor& x) const {
  if (fused_linear_supports(x, weight) && residual.is_contiguous()) return fused_linear(x, weight, bias, residual);
  at::Tensor rows = residual.view({-1, residual.size(-1)});
  rows.addmm_(x.reshape({-1, x.size(-1)}), weight.t());
  if (bias.defined()) rows.add_(bias);
  return residual;
}

ColumnParallelLinear column_parallel(const ModuleWeights& w, ParamKey key) {
  key.bias = false;
  const TensorShard& shard = w.at(key);
  return {shard.tensor, bias_of(w, key), shard.offset.empty() ? 0 : shard.offset[0]};
}

ColumnParallelLinear fuse_columns(const std::vector<ColumnParallelLinear*>& parts) {
  std::vector<at::Tensor> weights, biases;
  bool any_bias = false;
  for (const ColumnParallelLinear* p : parts) any_bias = any_bias || p->bias.defined();
  for (const ColumnParallelLinear* p : parts) {
    weights.push_back(p->weight);
    if (any_bias) biases.push_back(p->bias.defined() ? p->bias : at::zeros({p->weight.size(0)}, p->weight.options()));
  }
  ColumnParallelLinear fused;
  fused.weight = at::cat(weights, 0);
  if (any_bias) fused.bias = at::cat(biases, 0);
  // NOTE: set_ re-points each part's tensor (the same tensor the loaded shards hold) at its rows of
  // the fused one, so the loaded copy is freed here, not when the shards are: loading holds the
  // weights once plus one module's parts, not every fused projection twice (8.7 GB more at the
  // peak for Llama-3-8B when the shards were freed after the whole model was built).
  int64_t row = 0;
  for (ColumnParallelLinear* p : parts) {
    const int64_t rows = p->weight.size(0);
    p->weight.set_(fused.weight.narrow(0, row, rows));
    if (p->bias.defined()) p->bias.set_(fused.bias.narrow(0, row, rows));
    row += rows;
  }
  return fused;
}

RowParallelLinear row_parallel(const ModuleWeights& w, ParamKey key) {
  key.bias = false;
  return {w.at(key).tensor, bias_of(w, key)};
}

}  // namespace shardplan
