// libsoxr, driven as python-soxr 1.1's resample() drives it (see audio_resample.h).
#include "executor/media/audio_resample.h"

#include <soxr.h>

#include <algorithm>
#include <string>

#include "executor/media/media_error.h"

namespace shardplan {

std::vector<float> resample_audio(const std::vector<float>& samples, double in_rate, double out_rate) {
  if (in_rate == out_rate) return samples;
  // NOTE: the same settings and the same calls as python-soxr 1.1 (soxr_ext.cpp's csoxr_split_ch,
  // which a 1-D array takes): float32 in and out, SOXR_HQ with no flags, default runtime; the input
  // fed in pieces of max(1000, 48000 * in / out) samples, then a flush; the output capped at
  // in_len * out / in + 1 samples. The pieces and the cap can change the last samples, so both
  // are kept.
  soxr_error_t error = nullptr;
  const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  const soxr_quality_spec_t quality = soxr_quality_spec(SOXR_HQ, 0);
  soxr_t soxr = soxr_create(in_rate, out_rate, 1, &error, &io, &quality, nullptr);
  if (error != nullptr) throw MediaError(MediaError::kUnreadable, std::string("libsoxr: ") + error);
  const size_t in_len = samples.size();
  const size_t out_cap = static_cast<size_t>(static_cast<double>(in_len) * out_rate / in_rate) + 1;
  const size_t piece = static_cast<size_t>(std::max(1000.0, 48000 * in_rate / out_rate));
  std::vector<float> out(out_cap, 0.0f);
  size_t out_pos = 0;
  size_t done = 0;
  for (size_t at = 0; at < in_len && error == nullptr; at += piece) {
    error = soxr_process(soxr, samples.data() + at, std::min(piece, in_len - at), nullptr, out.data() + out_pos,
                         out_cap - out_pos, &done);
    out_pos += done;
  }
  if (error == nullptr) {
    error = soxr_process(soxr, nullptr, 0, nullptr, out.data() + out_pos, out_cap - out_pos, &done);
    out_pos += done;
  }
  soxr_delete(soxr);
  if (error != nullptr) throw MediaError(MediaError::kUnreadable, std::string("libsoxr: ") + error);
  out.resize(out_pos);
  return out;
}

}  // namespace shardplan
