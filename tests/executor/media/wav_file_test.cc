// WAV reading: every sample format's scale, channel averaging, and what is refused (not a WAV,
// mu-law, non-finite samples, no samples, too long, a FIFO).
#include "executor/media/wav_file.h"

#include <sys/stat.h>

#include <cmath>
#include <cstring>

#include <gtest/gtest.h>

#include "executor/media/audio_resample.h"
#include "executor/media/media_error.h"
#include "tests/executor/media/media_test_util.h"

namespace shardplan {
namespace {

// A canonical WAV: `format` 1 (PCM), 3 (IEEE float) or 7 (mu-law); `data` the sample bytes.
std::string wav(int format, int channels, int rate, int bits, const std::string& data) {
  auto u32 = [](uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); };
  auto u16 = [](uint16_t v) { return std::string(reinterpret_cast<const char*>(&v), 2); };
  const int block = channels * bits / 8;
  std::string fmt = u16(format) + u16(channels) + u32(rate) + u32(rate * block) + u16(block) + u16(bits);
  if (format != 1) fmt += u16(0);
  std::string body = "WAVEfmt " + u32(fmt.size()) + fmt;
  if (format != 1) body += "fact" + u32(4) + u32(data.size() / block);
  body += "data" + u32(data.size()) + data;
  return "RIFF" + u32(body.size()) + body;
}

template <typename T>
std::string bytes_of(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

std::pair<int, std::string> wav_error(const std::string& bytes, double max_seconds = 0.0) {
  try {
    decode_wav(bytes, "clip.wav", max_seconds);
  } catch (const MediaError& e) {
    return {e.exit_code(), e.what()};
  }
  return {0, "decoded"};
}

TEST(WavFileTest, ScalesEverySampleFormatToFullScaleOne) {
  // Half of full scale, negative full scale and zero, in each format.
  const Waveform pcm16 = decode_wav(wav(1, 1, 16000, 16, bytes_of<int16_t>({16384, -32768, 0})), "a");
  EXPECT_EQ(pcm16.samples, (std::vector<float>{0.5f, -1.0f, 0.0f}));
  EXPECT_EQ(pcm16.sample_rate, 16000);
  const Waveform pcm8 = decode_wav(wav(1, 1, 8000, 8, bytes_of<uint8_t>({192, 0, 128})), "a");
  EXPECT_EQ(pcm8.samples, (std::vector<float>{0.5f, -1.0f, 0.0f}));
  const Waveform pcm24 = decode_wav(wav(1, 1, 16000, 24, std::string("\0\0\x40\0\0\x80\0\0\0", 9)), "a");
  EXPECT_EQ(pcm24.samples, (std::vector<float>{0.5f, -1.0f, 0.0f}));
  const Waveform pcm32 = decode_wav(wav(1, 1, 16000, 32, bytes_of<int32_t>({1 << 30, INT32_MIN, 0})), "a");
  EXPECT_EQ(pcm32.samples, (std::vector<float>{0.5f, -1.0f, 0.0f}));
  const Waveform f32 = decode_wav(wav(3, 1, 22050, 32, bytes_of<float>({0.25f, -1.5f, 0.0f})), "a");
  EXPECT_EQ(f32.samples, (std::vector<float>{0.25f, -1.5f, 0.0f}));
  EXPECT_EQ(f32.sample_rate, 22050);
  const Waveform f64 = decode_wav(wav(3, 1, 16000, 64, bytes_of<double>({0.125, 2.0, -0.5})), "a");
  EXPECT_EQ(f64.samples, (std::vector<float>{0.125f, 2.0f, -0.5f}));
}

TEST(WavFileTest, AveragesChannels) {
  // Stereo frames (0.5, -0.25) and (1.0 - 2^-15, -1.0); three channels (0.5, 0.25, 0).
  const Waveform stereo = decode_wav(wav(1, 2, 16000, 16, bytes_of<int16_t>({16384, -8192, 32767, -32768})), "a");
  EXPECT_EQ(stereo.channels, 2);
  EXPECT_EQ(stereo.samples, (std::vector<float>{0.125f, (32767.0f / 32768.0f - 1.0f) / 2.0f}));
  const Waveform three = decode_wav(wav(1, 3, 16000, 16, bytes_of<int16_t>({16384, 8192, 0})), "a");
  EXPECT_EQ(three.samples, (std::vector<float>{0.75f / 3.0f}));
}

TEST(WavFileTest, RefusesWhatItCannotUse) {
  auto [code, message] = wav_error("not a wav file at all, just text");
  EXPECT_EQ(code, 2);
  EXPECT_NE(message.find("audio clip.wav: not a WAV file"), std::string::npos) << message;
  std::tie(code, message) = wav_error(wav(7, 1, 8000, 8, std::string(100, '\x7f')));  // mu-law
  EXPECT_EQ(code, 2);
  EXPECT_NE(message.find("neither PCM"), std::string::npos) << message;
  std::tie(code, message) = wav_error(wav(3, 1, 16000, 32, bytes_of<float>({0.1f, NAN})));
  EXPECT_EQ(code, 1);
  EXPECT_NE(message.find("sample 1 is not finite"), std::string::npos) << message;
  std::tie(code, message) = wav_error(wav(1, 1, 16000, 16, ""));
  EXPECT_EQ(code, 1);
  EXPECT_NE(message.find("no samples"), std::string::npos) << message;
  // 1.5 s at 8 kHz against a 1 s limit: refused from the header.
  std::tie(code, message) = wav_error(wav(1, 1, 8000, 16, std::string(2 * 12000, '\0')), 1.0);
  EXPECT_EQ(code, 1);
  EXPECT_NE(message.find("clip.wav: 1.50 s long, more than the 1.00 s the model takes"), std::string::npos)
      << message;

  const std::string dir = media_test::scratch_dir();
  const std::string fifo = dir + "/fifo.wav";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  try {
    read_wav_file(fifo);
    FAIL() << "a FIFO was read";
  } catch (const MediaError& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find("a FIFO, not a regular file"), std::string::npos) << e.what();
  }
}

TEST(WavFileTest, ResamplesToTheTargetRateKeepingATone) {
  // 0.5 s of a 440 Hz tone at 22.05 kHz -> 8000 samples at 16 kHz, still a 440 Hz tone (away from
  // the filter's edge transients).
  std::vector<float> tone(11025);
  for (size_t i = 0; i < tone.size(); ++i) tone[i] = 0.5f * std::sin(2 * M_PI * 440.0 * i / 22050.0);
  const std::vector<float> out = resample_audio(tone, 22050, 16000);
  ASSERT_EQ(out.size(), 8000u);
  for (size_t i = 1000; i < 7000; ++i) {
    ASSERT_NEAR(out[i], 0.5 * std::sin(2 * M_PI * 440.0 * i / 16000.0), 2e-3) << i;
  }
  EXPECT_EQ(resample_audio(tone, 16000, 16000), tone);
}

}  // namespace
}  // namespace shardplan
