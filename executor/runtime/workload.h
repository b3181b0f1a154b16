// The inputs `executor run` feeds: deterministic random prompts, the same on every rank, every
// platform and every run with the same seed.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace shardplan {

// [batch, tokens] int64 token ids in [0, vocab), CPU. Element (r, t) is splitmix64 of
// seed * 2^32 + r * tokens + t, modulo vocab (a counter-based stream: no dependence on the C++
// library's distributions, which differ between implementations).
at::Tensor make_prompts(int64_t batch, int64_t tokens, int64_t vocab, uint64_t seed);

}  // namespace shardplan
