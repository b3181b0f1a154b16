// The inputs `executor run` feeds: deterministic random prompts, the same on every rank, every
// platform and every run with the same seed.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "planner/plan/plan.h"

namespace shardplan {

// [batch, tokens] int64 token ids in [0, vocab), CPU. Element (r, t) is splitmix64 of
// seed * 2^32 + r * tokens + t, modulo vocab (a counter-based stream: no dependence on the C++
// library's distributions, which differ between implementations).
at::Tensor make_prompts(int64_t batch, int64_t tokens, int64_t vocab, uint64_t seed);

// LLaVA prompts [batch, image_tokens + text_tokens]: each starts with `image_tokens` ids equal to
// `image_token_index` (images_per_request * tokens_per_image: the images' places), followed by
// make_prompts(batch, text_tokens, vocab, seed)'s row, where an id equal to image_token_index
// becomes (image_token_index + 1) % vocab (so the text has no image token).
at::Tensor make_image_prompts(int64_t batch, int64_t image_tokens, int64_t text_tokens, int64_t vocab,
                              int64_t image_token_index, uint64_t seed);

// Deterministic float32 values in [-1, 1) of `shape` (images' pixel values, audio features), CPU.
// Element i (row-major) is u / 2^23 - 1 with u = splitmix64(seed * 2^32 + 2^30 + i) >> 40 (24
// bits, so every value is exact in float32 and Python reproduces it bit for bit).
at::Tensor make_uniform_inputs(const std::vector<int64_t>& shape, uint64_t seed);

// Everything a run of a plan's workload feeds, for every request (each rank takes its own).
struct EngineInputs {
  at::Tensor prompts;  // [batch, prefill tokens] int64: the text (llava: the images' tokens first)
  at::Tensor pixels;   // llava: [batch * images_per_request, channels, image_size, image_size]
  at::Tensor audio;    // whisper: log-mel features [batch, num_mel_bins, 2 * max_source_positions]
  // Prompts of different lengths: each left-padded to the longest; first[r] is request r's first
  // real token (its padding before it) [batch] int64. Undefined: every prompt is whole.
  at::Tensor first;
};

// The tokens of a request's prefill: prompt_tokens, plus images_per_request * tokens_per_image.
int64_t prefill_tokens(const Plan& plan);

// The plan's workload inputs with `seed`: make_prompts (llava: make_image_prompts) and
// make_uniform_inputs for the pixels or the audio features (the same seed).
EngineInputs make_engine_inputs(const Plan& plan, uint64_t seed);

}  // namespace shardplan
