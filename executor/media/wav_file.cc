// WAV through libsndfile's virtual I/O over the file's bytes (see wav_file.h).
#include "executor/media/wav_file.h"

#include <sndfile.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "base/input_file.h"
#include "executor/media/media_error.h"

namespace shardplan {
namespace {

struct MemoryFile {
  const std::string* bytes;
  sf_count_t offset = 0;
};

sf_count_t memory_length(void* user) { return static_cast<sf_count_t>(static_cast<MemoryFile*>(user)->bytes->size()); }

sf_count_t memory_seek(sf_count_t offset, int whence, void* user) {
  auto* f = static_cast<MemoryFile*>(user);
  const sf_count_t size = static_cast<sf_count_t>(f->bytes->size());
  sf_count_t at = whence == SEEK_SET ? offset : whence == SEEK_CUR ? f->offset + offset : size + offset;
  if (at < 0) at = 0;
  if (at > size) at = size;
  f->offset = at;
  return at;
}

sf_count_t memory_read(void* out, sf_count_t count, void* user) {
  auto* f = static_cast<MemoryFile*>(user);
  const sf_count_t left = static_cast<sf_count_t>(f->bytes->size()) - f->offset;
  const sf_count_t n = count < left ? count : left;
  std::memcpy(out, f->bytes->data() + f->offset, static_cast<size_t>(n));
  f->offset += n;
  return n;
}

sf_count_t memory_write(const void*, sf_count_t, void*) { return 0; }

sf_count_t memory_tell(void* user) { return static_cast<MemoryFile*>(user)->offset; }

const char* subtype_name(int subtype) {
  switch (subtype) {
    case SF_FORMAT_PCM_U8: return "PCM 8-bit";
    case SF_FORMAT_PCM_16: return "PCM 16-bit";
    case SF_FORMAT_PCM_24: return "PCM 24-bit";
    case SF_FORMAT_PCM_32: return "PCM 32-bit";
    case SF_FORMAT_FLOAT: return "float 32-bit";
    case SF_FORMAT_DOUBLE: return "float 64-bit";
    default: return nullptr;
  }
}

}  // namespace

Waveform decode_wav(const std::string& bytes, const std::string& name, double max_seconds) {
  // Checks: a WAV (RIFF, WAVE_FORMAT_EXTENSIBLE or RF64) container libsndfile can open; PCM
  // 8/16/24/32-bit or float 32/64 samples; a positive rate; at least one frame; at most
  // max_seconds; every sample finite.
  MemoryFile file{&bytes};
  SF_VIRTUAL_IO io{memory_length, memory_seek, memory_read, memory_write, memory_tell};
  SF_INFO info{};
  SNDFILE* sf = sf_open_virtual(&io, SFM_READ, &info, &file);
  if (sf == nullptr) {
    // libsndfile says "File contains data in an unknown format." for what is no audio file at all.
    throw MediaError(MediaError::kUnreadable, "audio " + name + ": not a WAV file libsndfile can read (" +
                                                  sf_strerror(nullptr) + ")");
  }
  struct Closer {
    SNDFILE* sf;
    ~Closer() { sf_close(sf); }
  } closer{sf};
  const int container = info.format & SF_FORMAT_TYPEMASK;
  if (container != SF_FORMAT_WAV && container != SF_FORMAT_WAVEX && container != SF_FORMAT_RF64) {
    throw MediaError(MediaError::kUnreadable, "audio " + name + ": not a WAV file (only WAV is supported)");
  }
  if (subtype_name(info.format & SF_FORMAT_SUBMASK) == nullptr) {
    throw MediaError(MediaError::kUnreadable, "audio " + name + ": a WAV whose samples are neither PCM 8/16/24/32-bit "
                                                                  "nor float 32/64-bit (e.g. mu-law or ADPCM)");
  }
  if (info.samplerate <= 0 || info.channels <= 0) {
    throw MediaError(MediaError::kBadContent, "audio " + name + ": a WAV with " + std::to_string(info.samplerate) +
                                                  " Hz and " + std::to_string(info.channels) + " channels");
  }
  if (info.frames <= 0) throw MediaError(MediaError::kBadContent, "audio " + name + ": the WAV has no samples");
  const double seconds = static_cast<double>(info.frames) / info.samplerate;
  if (max_seconds > 0.0 && seconds > max_seconds) {
    char buf[160];
    std::snprintf(buf, sizeof buf, ": %.2f s long, more than the %.2f s the model takes (longer clips are refused, "
                  "not cut)", seconds, max_seconds);
    throw MediaError(MediaError::kBadContent, "audio " + name + buf);
  }
  std::vector<float> interleaved(static_cast<size_t>(info.frames) * static_cast<size_t>(info.channels));
  const sf_count_t read = sf_readf_float(sf, interleaved.data(), info.frames);
  if (read != info.frames) {
    throw MediaError(MediaError::kBadContent, "audio " + name + ": the WAV is truncated (" + std::to_string(read) +
                                                  " of " + std::to_string(info.frames) + " frames)");
  }
  Waveform w;
  w.sample_rate = info.samplerate;
  w.channels = info.channels;
  w.samples.resize(static_cast<size_t>(info.frames));
  for (size_t i = 0; i < w.samples.size(); ++i) {
    // NOTE: channels averaged in float32, summed in order, as numpy's mean over the channel axis
    // (librosa.to_mono) does.
    float sum = 0.0f;
    for (int c = 0; c < info.channels; ++c) sum += interleaved[i * info.channels + c];
    const float v = info.channels == 1 ? sum : sum / static_cast<float>(info.channels);
    if (!std::isfinite(v)) {
      throw MediaError(MediaError::kBadContent, "audio " + name + ": sample " + std::to_string(i) + " is not finite");
    }
    w.samples[i] = v;
  }
  return w;
}

Waveform read_wav_file(const std::string& path, double max_seconds) {
  std::string error;
  const std::optional<std::string> bytes = read_input_file(path, kMaxAudioFileBytes, "an audio file", &error);
  if (!bytes) throw MediaError(MediaError::kUnreadable, "cannot read audio " + path + ": " + error);
  return decode_wav(*bytes, path, max_seconds);
}

}  // namespace shardplan
