// Whisper's log-mel features: the Slaney mel filters against transformers' values, the floor and
// scaling on silence and on a tone, the shape, and the refusal of a clip longer than the chunk.
#include "executor/media/log_mel.h"

#include <algorithm>
#include <cmath>

#include <gtest/gtest.h>

#include "executor/media/media_error.h"

namespace shardplan {
namespace {

TEST(LogMelTest, MelFiltersMatchTransformers) {
  // mel_filter_bank(201, 80, 0, 8000, 16000, norm="slaney", mel_scale="slaney") in transformers
  // 5.17: [1][0], [2][1], and the only two filters non-zero at bin 100 (4 kHz).
  const std::vector<double> bank = mel_filter_bank(80);
  ASSERT_EQ(bank.size(), 201u * 80u);
  EXPECT_DOUBLE_EQ(bank[1 * 80 + 0], 0.024862593984176087);
  EXPECT_DOUBLE_EQ(bank[2 * 80 + 1], 0.022871772096078023);
  EXPECT_DOUBLE_EQ(bank[100 * 80 + 61], 0.0003358862202509771);
  EXPECT_DOUBLE_EQ(bank[100 * 80 + 62], 0.006172718498657561);
  for (int m = 0; m < 80; ++m) {
    if (m != 61 && m != 62) {
      EXPECT_EQ(bank[100 * 80 + m], 0.0) << m;
    }
  }
}

TEST(LogMelTest, SilenceIsTheFloor) {
  // All zeros: every mel power is clamped to 1e-10, log10 -10, (-10 + 4) / 4 = -1.5.
  const LogMelConfig c = LogMelConfig::whisper(16, 50);
  const std::vector<float> f = log_mel_spectrogram(std::vector<float>(1000, 0.0f), c);
  ASSERT_EQ(f.size(), 16u * 100u);
  for (float v : f) ASSERT_EQ(v, -1.5f);
}

TEST(LogMelTest, ToneLightsItsMelBandAndPaddingIsFloored) {
  // 0.5 s of 1 kHz in a 1 s chunk (80 mels): the loudest band is the one whose filter peaks
  // nearest 1 kHz (band 26 has its peak at bin 25, 1000 Hz, in transformers' bank); the padded
  // second half sits at the floor, 8 below the maximum: (max - 8 + 4) / 4 = top - 2.
  LogMelConfig c = LogMelConfig::whisper(80, 50);
  std::vector<float> tone(8000);
  for (size_t i = 0; i < tone.size(); ++i) tone[i] = 0.3f * static_cast<float>(std::sin(2 * M_PI * 1000.0 * i / 16000));
  const std::vector<float> f = log_mel_spectrogram(tone, c);
  const float top = *std::max_element(f.begin(), f.end());
  const int64_t frame = 25;
  int64_t loudest = 0;
  for (int64_t m = 0; m < 80; ++m) {
    if (f[m * 100 + frame] > f[loudest * 100 + frame]) loudest = m;
  }
  EXPECT_EQ(loudest, 26);
  for (int64_t m = 0; m < 80; ++m) EXPECT_EQ(f[m * 100 + 90], top - 2.0f) << m;
}

TEST(LogMelTest, RefusesAClipLongerThanTheChunk) {
  const LogMelConfig c = LogMelConfig::whisper(16, 50);  // 1 s
  EXPECT_NO_THROW(log_mel_spectrogram(std::vector<float>(16000, 0.1f), c));
  try {
    log_mel_spectrogram(std::vector<float>(16001, 0.1f), c, "speech.wav");
    FAIL() << "a clip past the chunk was accepted";
  } catch (const MediaError& e) {
    EXPECT_EQ(e.exit_code(), 1);
    EXPECT_NE(std::string(e.what()).find("audio speech.wav: 1.00 s long (16001 samples at 16 kHz), more than the 1.00 s (16000 samples)"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(LogMelConfig::whisper(128, 1500).chunk_samples(), 480000);  // whisper-large-v3: 30 s
}

}  // namespace
}  // namespace shardplan
