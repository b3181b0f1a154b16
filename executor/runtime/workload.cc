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

at::Tensor make_image_prompts(int64_t batch, int64_t image_tokens, int64_t text_tokens, int64_t vocab,
                              int64_t image_token_index, uint64_t seed) {
  at::Tensor text = make_prompts(batch, text_tokens, vocab, seed);
  text = at::where(text.eq(image_token_index), at::full_like(text, (image_token_index + 1) % vocab), text);
  const at::Tensor images = at::full({batch, image_tokens}, image_token_index, text.options());
  return at::cat({images, text}, 1);
}

at::Tensor make_uniform_inputs(const std::vector<int64_t>& shape, uint64_t seed) {
  at::Tensor values = at::empty(shape, at::TensorOptions().dtype(at::kFloat));
  float* data = values.data_ptr<float>();
  for (int64_t i = 0; i < values.numel(); ++i) {
    const uint64_t u = splitmix64((seed << 32) + (uint64_t{1} << 30) + static_cast<uint64_t>(i)) >> 40;
    data[i] = static_cast<float>(static_cast<double>(u) / 8388608.0 - 1.0);
  }
  return values;
}

int64_t prefill_tokens(const Plan& plan) {
  const WorkloadSpec& w = plan.spec().workload;
  return w.prompt_tokens + w.images_per_request * plan.graph().workload.tokens_per_image;
}

// NOTE: the streams the model has decide the inputs, not its family: the graph says what an
// image stream's items and an audio stream's clips look like (WorkloadShape).
EngineInputs make_engine_inputs(const Plan& plan, uint64_t seed) {
  const ModelGraph& g = plan.graph();
  const WorkloadShape& shape = g.workload;
  const WorkloadSpec& w = plan.spec().workload;
  EngineInputs in;
  if (shape.tokens_per_image > 0) {
    in.prompts = make_image_prompts(w.batch, w.images_per_request * shape.tokens_per_image, w.prompt_tokens, g.vocab,
                                    shape.image_token, seed);
    in.pixels = make_uniform_inputs(
        {w.batch * w.images_per_request, shape.image_channels, shape.image_size, shape.image_size}, seed);
    return in;
  }
  in.prompts = make_prompts(w.batch, w.prompt_tokens, g.vocab, seed);
  if (shape.encoder_tokens_per_clip > 0) {
    in.audio = make_uniform_inputs({w.batch, shape.mel_bins, 2 * shape.encoder_tokens_per_clip}, seed);
  }
  return in;
}

}  // namespace shardplan
