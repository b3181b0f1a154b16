// Sample-rate conversion through libsoxr, with the recipe of python-soxr's `soxr.resample(x,
// in_rate, out_rate)` at its default quality (HQ): what librosa.load(sr=16000), transformers'
// audio loader, runs. Whisper takes 16 kHz.
#pragma once

#include <cstdint>
#include <vector>

namespace shardplan {

// `samples` at in_rate converted to out_rate (a copy when the rates are equal). Throws MediaError
// when libsoxr fails.
std::vector<float> resample_audio(const std::vector<float>& samples, double in_rate, double out_rate);

}  // namespace shardplan
