// Deterministic random prompts (see workload.h).
#include "executor/runtime/workload.h"

#include <ATen/ATen.h>

namespace shardplan {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

at::Tensor make_prompts(int64_t batch, int64_t tokens, int64_t vocab, uint64_t seed) {
  at::Tensor ids = at::empty({batch, tokens}, at::TensorOptions().dtype(at::kLong));
  int64_t* data = ids.data_ptr<int64_t>();
  for (int64_t i = 0; i < batch * tokens; ++i) {
    data[i] = static_cast<int64_t>(splitmix64((seed << 32) + static_cast<uint64_t>(i)) % static_cast<uint64_t>(vocab));
  }
  return ids;
}

}  // namespace shardplan
