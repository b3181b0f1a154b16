// `executor run --verify`: the same spec's model unsharded on one device, fed the tokens the
// sharded run generated (teacher forcing), and its logits compared with the sharded run's.
//
// Tolerance: the relative error of all the logits, ||sharded - reference|| / ||reference|| (2-norm
// over every step, request and vocabulary entry), must be at most rtol: float32 1e-4, bfloat16
// 1e-1, float16 2e-2 (two runs of the same weights differ only in the order of their sums; a
// half-precision partial sum is rounded before the all-reduce, a whole one after). The largest
// single difference is reported too. Tokens: the reference's argmax at every step is compared
// with the token the sharded run took; under teacher forcing, "identical at every step" means a
// free-running unsharded run generates the same tokens.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>

#include "executor/runtime/run_report.h"
#include "models/graph/model_graph.h"
#include "planner/plan/plan.h"

namespace shardplan {

double verify_rtol(DType dtype);

// sharded, reference: [steps, batch, vocab] float32; sharded_tokens: [batch, steps] int64.
// max_abs_diff is NaN-aware: a NaN anywhere fails.
VerifySummary compare_logits(const at::Tensor& sharded, const at::Tensor& reference,
                            const at::Tensor& sharded_tokens, DType dtype);

// The plan of the same spec on one device: no mesh, no batch axes, every module replicated.
std::unique_ptr<Plan> unsharded_plan(const Plan& plan);

}  // namespace shardplan
