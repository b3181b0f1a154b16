// Loading one rank's weights: every checkpoint tensor's slice as the plan's shards give it to the
// rank, read from the safetensors files through executor/weights (only the slice's bytes), then
// converted to the run's dtype and moved to its device.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "base/progress.h"
#include "executor/weights/safetensors.h"
#include "models/forward/tensor_shard.h"
#include "planner/plan/plan.h"

namespace shardplan {

// Checks, before reading anything: every tensor of the model is in the checkpoint with the shape
// the config gives (check_checkpoint_matches: WeightsError kInvalid lists every mismatch); each
// tensor's dtype is F32, BF16 or F16 (RunError kInvalid otherwise).
// A tensor of which the rank holds nothing (an expert elsewhere) is left out of the result.
TensorShards load_rank_shards(const Plan& plan, int64_t rank, const Checkpoint& checkpoint,
                              at::ScalarType dtype, at::Device device, Progress* progress = nullptr);

// The bytes of the rank's slices in the checkpoint's files: what load_rank_shards reads, so what
// Checkpoint::bytes_touched() shows after it.
uint64_t rank_shard_bytes(const Plan& plan, int64_t rank, const Checkpoint& checkpoint);

}  // namespace shardplan
