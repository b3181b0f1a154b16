// When the executor runs a MoE block's routed experts dense (every held expert on every token,
// weighted; no count on the host, so the decode step can be a CUDA graph): one rule for the
// forward (models/layers/moe.cc) and the cost model that predicts it (planner/plan/cost.cc).
#pragma once

#include <cstdint>

namespace shardplan {

// NOTE: an expert's GEMMs stay bound by reading its weights up to ~100-200 rows on current GPUs
// (a weight element is 2 FLOPs per row for its 2 bytes; an H200 does ~170 FLOPs per byte read),
// so running every held expert on up to 128 rows costs about its weight reads when most experts
// are hit anyway (tokens x top_k >= held experts); past that (a prefill) the extra FLOPs would
// show, and with few tokens most experts would be read for nothing: the rows go to their experts.
constexpr int64_t kMoeMaxDenseRows = 128;

inline bool moe_dense_rule(int64_t tokens, int64_t top_k, int64_t held_experts) {
  return held_experts > 0 && tokens <= kMoeMaxDenseRows && tokens * top_k >= held_experts;
}

}  // namespace shardplan
