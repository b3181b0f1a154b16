// Reading a request's WAV file (through libsndfile) into mono float samples at the file's rate:
// PCM 8/16/24/32-bit and float 32/64, any number of channels averaged to one (as librosa.load,
// transformers' audio loader, does). docs/media.md lists what is refused.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shardplan {

// The limit on a WAV file's bytes (30 s of 8-channel float64 at 192 kHz is 369 MB; real requests
// are far smaller).
inline constexpr int64_t kMaxAudioFileBytes = int64_t{512} << 20;  // 512 MiB

struct Waveform {
  std::vector<float> samples;  // mono, libsndfile's scale: PCM full scale is [-1, 1)
  int64_t sample_rate = 0;
  int channels = 0;            // in the file, before averaging
};

// The WAV file at `path`, its channels averaged. `max_seconds` > 0 refuses a longer clip before
// it is decoded (the message names the file, its duration and the limit). Throws MediaError:
// unreadable or not a supported WAV (exit 2), corrupt, empty, too long or non-finite (exit 1).
Waveform read_wav_file(const std::string& path, double max_seconds = 0.0);

// The same for a file's bytes already in memory; `name` is used in messages.
Waveform decode_wav(const std::string& bytes, const std::string& name, double max_seconds = 0.0);

}  // namespace shardplan
