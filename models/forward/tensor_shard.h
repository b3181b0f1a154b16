// A checkpoint tensor as one rank holds it (libtorch): the slice the plan gave the rank, and where
// the slice starts in the whole tensor. The forward code of every family reads its weights so.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace shardplan {

struct TensorShard {
  at::Tensor tensor;             // the slice, in the run's dtype, on the run's device
  std::vector<int64_t> offset;   // its first element in the whole tensor (all 0 when whole)
};

// By Hub tensor name.
using TensorShards = std::map<std::string, TensorShard>;

}  // namespace shardplan
