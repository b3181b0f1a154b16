// Choosing each request's next token from its logits: greedy, or sampled with temperature, top-k
// and top-p from a generator seeded per request, so that a request's tokens depend on its seed
// alone (not on the batch it runs in) and every rank that holds it draws the same (docs/executor-run.md).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <random>
#include <vector>

#include "executor/runtime/engine.h"
#include "executor/runtime/request_file.h"
#include "planner/plan/binding.h"

namespace shardplan {

// The next token of one request from its logits [vocab] (float32, CPU): greedy at temperature 0;
// else softmax(logits / temperature) in double precision, kept to the top_k most likely (ties:
// the lower id first), then to the smallest prefix of those whose probability reaches top_p, and
// one draw of `uniform` in [0, 1) over that prefix in order.
int64_t choose_token(const float* logits, int64_t vocab, const SamplingParams& params, double uniform);

// The engine's chooser for the requests a rank holds: `params` of every request of the batch,
// `held` the range the rank's logits are for. Each request has its own generator (std::mt19937_64
// seeded with its seed; one draw a step), so its tokens are the same on every rank and in any batch.
// With `ends` (one per request; empty: none) it also tracks which held requests have finished:
// the end-of-sequence ids `eos_ids` (unless ignore_eos), max_tokens tokens, or a stop string.
class RequestSampler : public TokenChooser {
 public:
  RequestSampler(const std::vector<SamplingParams>& params, RequestRange held,
                 const std::vector<RequestEnd>& ends = {}, const std::vector<int64_t>& eos_ids = {});
  at::Tensor choose(const at::Tensor& logits, int64_t step, const std::vector<int64_t>& rows) override;
  bool finished() const override;
  bool request_finished(int64_t held) const override { return done_.at(static_cast<size_t>(held)); }

 private:
  std::vector<SamplingParams> params_;  // of the held requests
  std::vector<std::mt19937_64> generators_;
  std::vector<RequestEnd> ends_;        // of the held requests (empty: not tracked)
  std::vector<int64_t> eos_ids_;
  std::vector<int64_t> generated_;      // tokens so far, per held request
  std::vector<std::vector<int64_t>> tokens_;  // and the tokens themselves, where a stop string is watched
  std::vector<bool> done_;
};

// Whether any request samples (temperature > 0); all greedy runs need no chooser.
bool any_sampling(const std::vector<SamplingParams>& params);

}  // namespace shardplan
