// One rank's slices of the checkpoint (see rank_weights.h).
#include "executor/runtime/rank_weights.h"

#include <ATen/ATen.h>

#include "executor/runtime/run_error.h"
#include "executor/weights/checkpoint_check.h"

namespace shardplan {
namespace {

at::ScalarType file_scalar_type(const TensorInfo& info) {
  switch (info.dtype) {
    case SafetensorsDType::kF32: return at::kFloat;
    case SafetensorsDType::kBF16: return at::kBFloat16;
    case SafetensorsDType::kF16: return at::kHalf;
    default: break;
  }
  throw RunError(RunError::Code::kInvalid, "tensor '" + info.name + "' in " + info.file + " is " +
                                               to_string(info.dtype) + "; the executor reads F32, BF16 and F16");
}

}  // namespace

TensorShards load_rank_shards(const Plan& plan, int64_t rank, const Checkpoint& checkpoint,
                              at::ScalarType dtype, at::Device device, Progress* progress) {
  check_checkpoint_matches(checkpoint, plan.graph());
  for (const ParamPlan& p : plan.params) file_scalar_type(checkpoint.info(p.param->name));

  TensorShards shards;
  int64_t read = 0;
  for (const ParamPlan& p : plan.params) {
    const ShardSlice slice = shard_for_rank(p, plan.mesh, rank);
    if (slice.numel() == 0) continue;
    const std::string& name = p.param->name;
    at::Tensor host = at::empty(slice.shape, at::TensorOptions().dtype(file_scalar_type(checkpoint.info(name))));
    checkpoint.read_slice(name, slice.offset, slice.shape, host.data_ptr());
    shards[name] = TensorShard{host.to(device, dtype), slice.offset};
    read += host.numel() * static_cast<int64_t>(host.element_size());
    if (progress) progress->update(read);
  }
  if (progress) progress->done();
  return shards;
}

uint64_t rank_shard_bytes(const Plan& plan, int64_t rank, const Checkpoint& checkpoint) {
  uint64_t bytes = 0;
  for (const ParamPlan& p : plan.params) {
    const TensorInfo& info = checkpoint.info(p.param->name);
    bytes += static_cast<uint64_t>(shard_for_rank(p, plan.mesh, rank).numel()) * element_bytes(info.dtype);
  }
  return bytes;
}

}  // namespace shardplan
