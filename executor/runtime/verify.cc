// The unsharded reference of --verify and the comparison of logits (see verify.h).
#include "executor/runtime/verify.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "planner/spec/assignment.h"

namespace shardplan {

double verify_rtol(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return 1e-4;
    // NOTE: measured on a Llama-3-8B-shaped random model on H200s (docs/gpu-results.md): two
    // correct bf16 implementations differ by a relative error of 4-7% after 32 layers
    // (transformers vs this executor on one GPU: 3.9%; TP2/TP4 vs unsharded: 6.6-7.3%), while
    // the same runs in fp32 agree to 1e-5; a wrong slice, head mapping or residual gives O(1).
    case DType::kBFloat16: return 1e-1;
    case DType::kFloat16: return 2e-2;
  }
  return 1e-4;
}

VerifySummary compare_logits(const at::Tensor& sharded, const at::Tensor& reference,
                            const at::Tensor& sharded_tokens, DType dtype) {
  VerifySummary r;
  r.rtol = verify_rtol(dtype);
  r.tolerance = r.rtol;
  if (reference.numel() == 0) return r;  // new_tokens: 0, nothing to compare
  const at::Tensor diff = (sharded - reference).abs();
  const int64_t batch = diff.size(1), vocab = diff.size(2);
  const int64_t worst = diff.flatten().argmax().item<int64_t>();
  r.max_abs_diff = diff.flatten()[worst].item<double>();
  r.worst_step = worst / (batch * vocab);
  r.worst_request = (worst / vocab) % batch;
  r.logits_scale = reference.abs().max().item<double>();
  // NOTE: the criterion is the relative error of all the logits together, ||a - b|| / ||b||, the
  // usual one for comparing two implementations of a computation (the max of 8M half-precision
  // differences after 32 layers is dominated by a few outliers of reduction order); the largest
  // single difference is reported beside it.
  const double ref_norm = reference.to(at::kDouble).norm().item<double>();
  const double diff_norm = (sharded.to(at::kDouble) - reference.to(at::kDouble)).norm().item<double>();
  r.relative_error = ref_norm > 0 ? diff_norm / ref_norm : diff_norm;
  r.tolerance = r.rtol;
  // NaN fails too: a NaN error is never <= the tolerance.
  r.passed = r.relative_error <= r.tolerance && !diff.isnan().any().item<bool>();
  const at::Tensor reference_tokens = reference.argmax(-1).transpose(0, 1);  // [batch, steps]
  r.token_mismatches = reference_tokens.ne(sharded_tokens).sum().item<int64_t>();
  r.tokens_identical = r.token_mismatches == 0;
  return r;
}

std::unique_ptr<Plan> unsharded_plan(const Plan& plan) {
  CheckedSpec one;
  one.spec = plan.checked.spec;
  one.graph = plan.checked.graph;
  one.spec.mesh.clear();
  one.spec.batch_axes.clear();
  one.spec.batch_axis_pos.clear();
  one.spec.rules.clear();
  one.spec.default_mode = ParallelMode::kReplicate;
  one.spec.default_axes.clear();
  // The assignment is made against this copy's graph (CheckedSpec is not copyable for that reason).
  one.assignment = assign_modules(one.spec, one.graph);
  return build_plan(std::move(one));
}

}  // namespace shardplan
