// Memory and work per rank for the spec's workload: weight bytes (exact, from the slices),
// KV-cache bytes, and FLOPs for the prefill of the whole workload and for one decode step.
#pragma once

#include "planner/plan/plan.h"

namespace shardplan {

// Fills plan.ranks and every ModulePlan::weight_bytes_max. Needs params and module layouts.
//
// The model (docs/plan.md has the derivation):
//  - weights: the sum of each rank's slices times the dtype size;
//  - KV cache: per attention layer 2 * kv_heads_on_rank * head_dim * requests_on_rank *
//    (prompt + image tokens + new_tokens); cross-attention caches k and v of the encoder states;
//  - FLOPs: 2 * (weight elements a token multiplies) per token, experts weighted by top-k, plus
//    attention scores (2 * 2 * heads * head_dim * context per token, causal context in prefill).
void compute_costs(Plan& plan);

}  // namespace shardplan
