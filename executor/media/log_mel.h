// Whisper's log-mel features, as transformers 5.17's WhisperFeatureExtractor computes them: the
// 16 kHz clip padded with zeros to the chunk, a centred STFT (n_fft 400, hop 160, periodic Hann,
// reflect padding) through FFTW, the power spectrum, Slaney mel filters, log10 of max(x, 1e-10),
// floored at the maximum - 8, (x + 4) / 4, the last frame dropped. Output float32 [n_mels, frames].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shardplan {

struct LogMelConfig {
  static constexpr int64_t kSampleRate = 16000;
  static constexpr int64_t kFftSize = 400;
  static constexpr int64_t kHop = 160;
  int64_t n_mels = 80;     // the model config's num_mel_bins
  int64_t frames = 3000;   // 2 * max_source_positions (the encoder's conv halves them)

  // From a Whisper config: num_mel_bins and max_source_positions (whisper-large-v3: 128, 1500
  // -> 3000 frames = 30 s; tiny-whisper: 16, 50 -> 100 frames = 1 s).
  static LogMelConfig whisper(int64_t num_mel_bins, int64_t max_source_positions);
  // The clip length the features cover: frames * hop samples at 16 kHz.
  int64_t chunk_samples() const { return frames * kHop; }
  double chunk_seconds() const { return static_cast<double>(chunk_samples()) / kSampleRate; }
};

// transformers' mel_filter_bank(201, n_mels, 0, 8000, 16000, norm="slaney", mel_scale="slaney"):
// [201 frequency bins][n_mels], row-major.
std::vector<double> mel_filter_bank(int64_t n_mels);

// The features of 16 kHz samples; throws MediaError when there are more than chunk_samples()
// (`name` in the message).
std::vector<float> log_mel_spectrogram(const std::vector<float>& samples, const LogMelConfig& config,
                                       const std::string& name = "the clip");

// A WAV file read (read_wav_file: channels averaged), resampled to 16 kHz (resample_audio) and
// turned into features. A clip longer than the chunk is refused (MediaError, exit 1), with the
// file, its duration and the limit in the message.
// NOTE: transformers cuts a longer clip silently; a request whose audio is cut gets a transcript
// of part of it, so we refuse instead.
std::vector<float> whisper_log_mel(const std::string& wav_path, const LogMelConfig& config);

}  // namespace shardplan
