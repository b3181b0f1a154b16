// Token choice per request (see sampling.h).
#include "executor/runtime/sampling.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace shardplan {

int64_t choose_token(const float* logits, int64_t vocab, const SamplingParams& params, double uniform) {
  if (params.temperature <= 0) return std::max_element(logits, logits + vocab) - logits;
  // Ids by logit, descending; equal logits: the lower id first (the same order everywhere).
  std::vector<int64_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  const int64_t keep = params.top_k > 0 ? std::min(params.top_k, vocab) : vocab;
  const auto before = [&](int64_t a, int64_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(order.begin(), order.begin() + keep, order.end(), before);
  order.resize(keep);
  // softmax(logits / temperature) over the kept ids, from the largest (numerically stable).
  std::vector<double> p(keep);
  const double top = logits[order[0]] / params.temperature;
  double total = 0;
  for (int64_t i = 0; i < keep; ++i) total += p[i] = std::exp(logits[order[i]] / params.temperature - top);
  // The smallest prefix whose probability reaches top_p (of the kept ones' total).
  int64_t n = keep;
  if (params.top_p < 1) {
    double sum = 0;
    for (n = 0; n < keep;) {
      sum += p[n++];
      if (sum >= params.top_p * total) break;
    }
  }
  double mass = 0;
  for (int64_t i = 0; i < n; ++i) mass += p[i];
  double target = uniform * mass;
  for (int64_t i = 0; i < n; ++i) {
    target -= p[i];
    if (target < 0) return order[i];
  }
  return order[n - 1];
}

RequestSampler::RequestSampler(const std::vector<SamplingParams>& params, RequestRange held,
                               const std::vector<RequestEnd>& ends, const std::vector<int64_t>& eos_ids)
    : eos_ids_(eos_ids) {
  for (int64_t r = held.begin; r < held.begin + held.count; ++r) {
    params_.push_back(params.at(r));
    generators_.emplace_back(params.at(r).seed);
    if (!ends.empty()) ends_.push_back(ends.at(r));
  }
  generated_.assign(params_.size(), 0);
  tokens_.resize(params_.size());
  done_.assign(params_.size(), false);
}

bool RequestSampler::finished() const {
  return !ends_.empty() && std::all_of(done_.begin(), done_.end(), [](bool d) { return d; });
}

at::Tensor RequestSampler::choose(const at::Tensor& logits, int64_t, const std::vector<int64_t>& rows) {
  const at::Tensor host = logits.to(at::kCPU).contiguous();
  const int64_t vocab = host.size(1);
  std::vector<int64_t> next(rows.size(), 0);
  for (size_t r = 0; r < rows.size(); ++r) {
    if (rows[r] < 0) continue;  // a padding row
    const size_t i = static_cast<size_t>(rows[r]);
    // One draw a step for every request, greedy or not, so a request's stream never depends on
    // how it was chosen before. 53 random bits: a double in [0, 1).
    const double uniform = static_cast<double>(generators_[i]() >> 11) * 0x1.0p-53;
    next[r] = choose_token(host[static_cast<int64_t>(r)].data_ptr<float>(), vocab, params_[i], uniform);
    if (ends_.empty() || done_[i]) continue;
    ++generated_[i];
    const bool eos = !ends_[i].ignore_eos && std::find(eos_ids_.begin(), eos_ids_.end(), next[r]) != eos_ids_.end();
    bool stopped = false;
    if (ends_[i].stopped) {
      tokens_[i].push_back(next[r]);
      stopped = ends_[i].stopped(tokens_[i]);
    }
    done_[i] = eos || stopped || generated_[i] >= ends_[i].max_tokens;
  }
  return at::tensor(next, at::TensorOptions().dtype(at::kLong)).to(logits.device());
}

bool any_sampling(const std::vector<SamplingParams>& params) {
  return std::any_of(params.begin(), params.end(), [](const SamplingParams& p) { return p.temperature > 0; });
}

}  // namespace shardplan
