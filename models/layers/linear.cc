// Column- and row-parallel linears (see linear.h).
#include "models/layers/linear.h"

#include <ATen/ATen.h>

namespace shardplan {
namespace {

at::Tensor bias_of(const ModuleWeights& w, ParamKey key) {
  key.bias = true;
  const TensorShard* shard = w.find(key);
  return shard ? shard->tensor : at::Tensor();
}

}  // namespace

at::Tensor ColumnParallelLinear::forward(const at::Tensor& x) const { return at::linear(x, weight, bias); }

at::Tensor RowParallelLinear::forward(const at::Tensor& x, bool adds_bias) const {
  return at::linear(x, weight, adds_bias ? bias : at::Tensor());
}

ColumnParallelLinear column_parallel(const ModuleWeights& w, ParamKey key) {
  key.bias = false;
  const TensorShard& shard = w.at(key);
  return {shard.tensor, bias_of(w, key), shard.offset.empty() ? 0 : shard.offset[0]};
}

RowParallelLinear row_parallel(const ModuleWeights& w, ParamKey key) {
  key.bias = false;
  return {w.at(key).tensor, bias_of(w, key)};
}

}  // namespace shardplan
