// Whisper's log-mel features through FFTW (see log_mel.h).
//
// NOTE: the arithmetic follows transformers' NumPy path (`_np_extract_fbank_features`, audio_utils
// `spectrogram`), the one without torch: the padded float32 clip cast to float64, the window
// np.hanning(401)[:-1], a float64 FFT whose output is stored as complex64, |X|^2 in float64, the
// mel product in float64, log10 then float32. With torch installed transformers takes a float32
// torch.stft path instead, which agrees with the NumPy one to about 1e-5 (docs/media.md has both
// measured against this code).
#include "executor/media/log_mel.h"

#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <mutex>

#include "executor/media/audio_resample.h"
#include "executor/media/media_error.h"
#include "executor/media/wav_file.h"

namespace shardplan {
namespace {

constexpr int64_t kBins = LogMelConfig::kFftSize / 2 + 1;  // 201

// transformers' hertz_to_mel / mel_to_hertz, mel_scale="slaney": linear below 1 kHz, log above.
double hertz_to_mel(double hz) {
  const double logstep = 27.0 / std::log(6.4);
  if (hz >= 1000.0) return 15.0 + std::log(hz / 1000.0) * logstep;
  return 3.0 * hz / 200.0;
}
double mel_to_hertz(double mel) {
  const double logstep = std::log(6.4) / 27.0;
  if (mel >= 15.0) return 1000.0 * std::exp(logstep * (mel - 15.0));
  return 200.0 * mel / 3.0;
}

// np.linspace(start, stop, n): start + i * step, the last one exactly stop.
std::vector<double> linspace(double start, double stop, int64_t n) {
  std::vector<double> v(static_cast<size_t>(n));
  const double step = (stop - start) / static_cast<double>(n - 1);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<double>(i) * step + start;
  v[n - 1] = stop;
  return v;
}

// FFTW's planner is not thread-safe; plans are made under this lock (executing one is safe).
std::mutex& fftw_planner_lock() {
  static std::mutex lock;
  return lock;
}

}  // namespace

LogMelConfig LogMelConfig::whisper(int64_t num_mel_bins, int64_t max_source_positions) {
  LogMelConfig c;
  c.n_mels = num_mel_bins;
  c.frames = 2 * max_source_positions;
  return c;
}

std::vector<double> mel_filter_bank(int64_t n_mels) {
  const std::vector<double> mel = linspace(hertz_to_mel(0.0), hertz_to_mel(8000.0), n_mels + 2);
  std::vector<double> filter_hz(mel.size());
  for (size_t i = 0; i < mel.size(); ++i) filter_hz[i] = mel_to_hertz(mel[i]);
  const std::vector<double> fft_hz = linspace(0.0, static_cast<double>(LogMelConfig::kSampleRate / 2), kBins);
  std::vector<double> bank(static_cast<size_t>(kBins * n_mels));
  for (int64_t k = 0; k < kBins; ++k) {
    for (int64_t m = 0; m < n_mels; ++m) {
      // Triangles rising from filter m to m + 1 and falling to m + 2, then Slaney's area
      // normalisation 2 / (right - left).
      const double down = -(filter_hz[m] - fft_hz[k]) / (filter_hz[m + 1] - filter_hz[m]);
      const double up = (filter_hz[m + 2] - fft_hz[k]) / (filter_hz[m + 2] - filter_hz[m + 1]);
      const double tri = std::max(0.0, std::min(down, up));
      bank[k * n_mels + m] = tri * (2.0 / (filter_hz[m + 2] - filter_hz[m]));
    }
  }
  return bank;
}

std::vector<float> log_mel_spectrogram(const std::vector<float>& samples, const LogMelConfig& config,
                                       const std::string& name) {
  // Checks: positive n_mels and frames; no more samples than the chunk.
  if (config.n_mels <= 0 || config.frames <= 0) {
    throw MediaError(MediaError::kBadContent, "log-mel: n_mels and frames must be positive");
  }
  const int64_t n = config.chunk_samples();
  if (static_cast<int64_t>(samples.size()) > n) {
    char buf[240];
    std::snprintf(buf, sizeof buf, ": %.2f s long (%zu samples at 16 kHz), more than the %.2f s (%lld samples) the "
                  "model takes (longer clips are refused, not cut)", static_cast<double>(samples.size()) /
                  LogMelConfig::kSampleRate, samples.size(), config.chunk_seconds(), static_cast<long long>(n));
    throw MediaError(MediaError::kBadContent, "audio " + name + buf);
  }
  constexpr int64_t kN = LogMelConfig::kFftSize;
  constexpr int64_t kPad = kN / 2;
  // The clip padded with zeros to the chunk, then reflected by 200 samples at each end.
  std::vector<double> wave(static_cast<size_t>(n + 2 * kPad), 0.0);
  for (size_t i = 0; i < samples.size(); ++i) wave[kPad + i] = samples[i];
  for (int64_t i = 0; i < kPad; ++i) {
    wave[kPad - 1 - i] = wave[kPad + 1 + i];
    wave[kPad + n + i] = wave[kPad + n - 2 - i];
  }
  // np.hanning(401)[:-1]: 0.5 + 0.5 cos(pi k / 400) for k = -400, -398, ..., 398.
  std::vector<double> window(kN);
  for (int64_t i = 0; i < kN; ++i) window[i] = 0.5 + 0.5 * std::cos(M_PI * static_cast<double>(-kN + 2 * i) / kN);

  const std::vector<double> bank = mel_filter_bank(config.n_mels);
  const int64_t frames = config.frames;  // 1 + n / hop frames, the last one dropped
  std::vector<double> log_spec(static_cast<size_t>(config.n_mels * frames));

  double* in = fftw_alloc_real(kN);
  fftw_complex* out = fftw_alloc_complex(kBins);
  fftw_plan plan;
  {
    std::lock_guard<std::mutex> hold(fftw_planner_lock());
    plan = fftw_plan_dft_r2c_1d(static_cast<int>(kN), in, out, FFTW_ESTIMATE);
  }
  std::vector<double> power(kBins);
  for (int64_t t = 0; t < frames; ++t) {
    for (int64_t i = 0; i < kN; ++i) in[i] = wave[t * LogMelConfig::kHop + i] * window[i];
    fftw_execute(plan);
    for (int64_t k = 0; k < kBins; ++k) {
      // Stored as complex64 by transformers, then |.| in float64, squared.
      const double magnitude = std::hypot(static_cast<double>(static_cast<float>(out[k][0])),
                                          static_cast<double>(static_cast<float>(out[k][1])));
      power[k] = magnitude * magnitude;
    }
    for (int64_t m = 0; m < config.n_mels; ++m) {
      double sum = 0.0;
      for (int64_t k = 0; k < kBins; ++k) sum += bank[k * config.n_mels + m] * power[k];
      log_spec[m * frames + t] = std::log10(std::max(1e-10, sum));
    }
  }
  {
    std::lock_guard<std::mutex> hold(fftw_planner_lock());
    fftw_destroy_plan(plan);
  }
  fftw_free(in);
  fftw_free(out);

  // float32 from here: the floor 8 below the maximum, then (x + 4) / 4.
  std::vector<float> features(log_spec.size());
  float max = -INFINITY;
  for (size_t i = 0; i < log_spec.size(); ++i) {
    features[i] = static_cast<float>(log_spec[i]);
    max = std::max(max, features[i]);
  }
  const float floor = max - 8.0f;
  for (float& v : features) v = (std::max(v, floor) + 4.0f) / 4.0f;
  return features;
}

std::vector<float> whisper_log_mel(const std::string& wav_path, const LogMelConfig& config) {
  // NOTE: a first refusal from the WAV header's duration (plus one output sample of slack for the
  // resampler's rounding), before decoding or resampling a long file; the exact one on the samples.
  const double slack = 1.0 / LogMelConfig::kSampleRate;
  const Waveform wave = read_wav_file(wav_path, config.chunk_seconds() + slack);
  const std::vector<float> samples =
      resample_audio(wave.samples, static_cast<double>(wave.sample_rate), static_cast<double>(LogMelConfig::kSampleRate));
  return log_mel_spectrogram(samples, config, wav_path);
}

}  // namespace shardplan
