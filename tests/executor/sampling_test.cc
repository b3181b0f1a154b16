// Token choice: greedy is the first of the maxima; top-k and top-p keep what they say; a draw maps
// to the token whose probability interval holds it; a request's tokens depend on its seed alone.
#include "executor/runtime/sampling.h"

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

#include <gtest/gtest.h>

namespace shardplan {
namespace {

TEST(SamplingTest, GreedyIsTheFirstMaximum) {
  const std::vector<float> logits{0.5f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(choose_token(logits.data(), 4, SamplingParams{}, 0.99), 1);
}

TEST(SamplingTest, DrawsFollowTheProbabilities) {
  // log(1), log(2), log(3), log(4) at temperature 1: probabilities 0.1, 0.2, 0.3, 0.4, taken from
  // the most likely: token 3 for u < 0.4, token 2 for u < 0.7, token 1 for u < 0.9, else token 0.
  const std::vector<float> logits{0.f, std::log(2.f), std::log(3.f), std::log(4.f)};
  SamplingParams p;
  p.temperature = 1;
  EXPECT_EQ(choose_token(logits.data(), 4, p, 0.0), 3);
  EXPECT_EQ(choose_token(logits.data(), 4, p, 0.39), 3);
  EXPECT_EQ(choose_token(logits.data(), 4, p, 0.41), 2);
  EXPECT_EQ(choose_token(logits.data(), 4, p, 0.69), 2);
  EXPECT_EQ(choose_token(logits.data(), 4, p, 0.71), 1);
  EXPECT_EQ(choose_token(logits.data(), 4, p, 0.95), 0);
  // top_k 2: tokens 3 and 2 only, 4:3.
  p.top_k = 2;
  EXPECT_EQ(choose_token(logits.data(), 4, p, 0.56), 3);
  EXPECT_EQ(choose_token(logits.data(), 4, p, 0.58), 2);
  EXPECT_EQ(choose_token(logits.data(), 4, p, 0.999), 2);
  // top_p 0.65: 0.4 + 0.3 reaches it: tokens 3 and 2 again.
  p.top_k = 0;
  p.top_p = 0.65;
  EXPECT_EQ(choose_token(logits.data(), 4, p, 0.999), 2);
  p.top_p = 0.39;  // token 3 alone (0.4) reaches it
  EXPECT_EQ(choose_token(logits.data(), 4, p, 0.999), 3);
  // A low temperature sharpens toward the argmax.
  p.top_p = 1;
  p.temperature = 0.01;
  EXPECT_EQ(choose_token(logits.data(), 4, p, 0.999), 3);
}

TEST(SamplingTest, ARequestsTokensDependOnItsSeedAlone) {
  at::manual_seed(0);
  const at::Tensor logits = at::randn({3, 50});
  std::vector<SamplingParams> params(3);
  for (auto& p : params) p.temperature = 1.0;
  params[0].seed = 5;
  params[1].seed = 6;
  params[2].seed = 5;
  // The batch of all three, and request 2 held alone by another rank, over several steps.
  RequestSampler all(params, RequestRange{0, 3});
  RequestSampler third(params, RequestRange{2, 1});
  bool differ = false;
  for (int step = 0; step < 20; ++step) {
    const at::Tensor a = all.choose(logits, step, {0, 1, 2});
    const at::Tensor b = third.choose(logits.narrow(0, 2, 1), step, {0});
    EXPECT_EQ(a[2].item<int64_t>(), b[0].item<int64_t>()) << step;
    differ = differ || a[0].item<int64_t>() != a[1].item<int64_t>();
  }
  EXPECT_TRUE(differ) << "seeds 5 and 6 drew the same 20 tokens";
  EXPECT_TRUE(any_sampling(params));
  EXPECT_FALSE(any_sampling(std::vector<SamplingParams>(2)));
}

// After requests leave the batch, a row holds another request: the sampler follows `rows`, so a
// request draws the same tokens whichever row it sits in, and padding rows (-1) draw nothing.
TEST(SamplingTest, RowsFollowTheRequestsAsTheBatchShrinks) {
  at::manual_seed(1);
  const at::Tensor logits = at::randn({3, 50});
  std::vector<SamplingParams> params(3);
  for (size_t i = 0; i < params.size(); ++i) {
    params[i].temperature = 0.8;
    params[i].seed = 10 + i;
  }
  RequestSampler stay(params, RequestRange{0, 3});
  RequestSampler leave(params, RequestRange{0, 3});
  for (int step = 0; step < 10; ++step) {
    const at::Tensor a = stay.choose(logits, step, {0, 1, 2});
    // Requests 0 and 1 have left; request 2 runs in row 0, padded by a row of nothing.
    const at::Tensor moved = at::stack({logits[2], logits[0]});
    const at::Tensor b = step < 3 ? leave.choose(logits, step, {0, 1, 2}) : leave.choose(moved, step, {2, -1});
    EXPECT_EQ(a[2].item<int64_t>(), b[step < 3 ? 2 : 0].item<int64_t>()) << step;
  }
}

// A stop string ends a request as EOS and max_tokens do (request_finished), so it can leave.
TEST(SamplingTest, StopStringFinishesTheRequest) {
  const at::Tensor logits = at::zeros({2, 8});
  std::vector<SamplingParams> params(2);  // greedy: token 0 every step (all logits equal)
  std::vector<RequestEnd> ends(2);
  ends[0].max_tokens = 10;
  ends[1].max_tokens = 10;
  ends[1].stopped = [](const std::vector<int64_t>& ids) { return ids.size() >= 3; };
  RequestSampler sampler(params, RequestRange{0, 2}, ends, {7});
  for (int step = 0; step < 3; ++step) {
    EXPECT_FALSE(sampler.request_finished(1)) << step;
    sampler.choose(logits, step, {0, 1});
  }
  EXPECT_TRUE(sampler.request_finished(1));
  EXPECT_FALSE(sampler.request_finished(0));
  EXPECT_FALSE(sampler.finished());
}

// The batch sizes a shrinking batch steps down through under CUDA graphs.
TEST(GraphBatchSize, DefaultsAndTheSpecsSizes) {
  EXPECT_EQ(graph_batch_size(1, 64), 1);
  EXPECT_EQ(graph_batch_size(3, 64), 4);
  EXPECT_EQ(graph_batch_size(5, 64), 8);
  EXPECT_EQ(graph_batch_size(9, 64), 16);
  EXPECT_EQ(graph_batch_size(17, 64), 24);
  EXPECT_EQ(graph_batch_size(5, 6), 6);  // never more than the batch
  const std::vector<int64_t> sizes{2, 12};
  EXPECT_EQ(graph_batch_size(1, 32, sizes), 2);
  EXPECT_EQ(graph_batch_size(3, 32, sizes), 12);
  EXPECT_EQ(graph_batch_size(13, 32, sizes), 32);  // none holds 13: the batch itself
  EXPECT_EQ(graph_batch_size(3, 8, sizes), 8);
}

}  // namespace
}  // namespace shardplan
