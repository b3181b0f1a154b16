// Column- and row-parallel linear layers built from the plan's slices of one rank. Column-parallel
// (q/k/v, gate/up, fc1): the rank holds output rows [out_begin, out_begin + rows) of the weight
// and of the bias; its output is those features. Row-parallel (o, down, fc2): the rank holds
// input columns of the weight; its output is a partial sum, and the whole bias is added once
// (by the rank that adds the whole terms) so that the all_reduce sums it once.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "models/layers/weights.h"

namespace shardplan {

struct ColumnParallelLinear {
  at::Tensor weight;      // [rows held, in]
  at::Tensor bias;        // [rows held] or undefined
  int64_t out_begin = 0;  // first output row held
  at::Tensor forward(const at::Tensor& x) const;
};

struct RowParallelLinear {
  at::Tensor weight;      // [out, columns held]
  at::Tensor bias;        // [out] whole, or undefined
  at::Tensor forward(const at::Tensor& x, bool adds_bias) const;
  // residual + forward(x, true), written into `residual` (one GEMM that accumulates into it:
  // no separate add). `residual` must be contiguous; it is returned.
  at::Tensor add_into(at::Tensor residual, const at::Tensor& x) const;
};

// The linear of `key`'s role (key.bias ignored: weight and bias are both taken).
ColumnParallelLinear column_parallel(const ModuleWeights& w, ParamKey key);

// Column-parallel linears of the same input fused into one (rows stacked in order; a missing
// bias is zeros when another has one), and `parts` turned into views of its row blocks, so the
// rank holds the weights once. One GEMM instead of several (q/k/v, gate/up).
ColumnParallelLinear fuse_columns(const std::vector<ColumnParallelLinear*>& parts);
RowParallelLinear row_parallel(const ModuleWeights& w, ParamKey key);

}  // namespace shardplan
