// float32 -> bfloat16 / float16 rounding on values whose correct bits are known.
#include "executor/weights/half_float.h"

#include <cmath>
#include <cstring>
#include <limits>

#include <gtest/gtest.h>

namespace shardplan {
namespace {

float from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

TEST(HalfFloatTest, BFloat16RoundsToNearestEven) {
  EXPECT_EQ(float_to_bfloat16_bits(1.0f), 0x3F80);
  EXPECT_EQ(float_to_bfloat16_bits(-2.0f), 0xC000);
  EXPECT_EQ(float_to_bfloat16_bits(0.0f), 0x0000);
  EXPECT_EQ(float_to_bfloat16_bits(-0.0f), 0x8000);
  EXPECT_EQ(float_to_bfloat16_bits(from_bits(0x3F808000)), 0x3F80);  // 1 + 2^-8: tie, even below
  EXPECT_EQ(float_to_bfloat16_bits(from_bits(0x3F818000)), 0x3F82);  // 1 + 3 * 2^-8: tie, even above
  EXPECT_EQ(float_to_bfloat16_bits(from_bits(0x3F808001)), 0x3F81);  // just above the tie
  EXPECT_EQ(float_to_bfloat16_bits(from_bits(0x3F807FFF)), 0x3F80);  // just below it
  EXPECT_EQ(float_to_bfloat16_bits(3.14159265f), 0x4049);            // pi
  EXPECT_EQ(float_to_bfloat16_bits(0.1f), 0x3DCD);
  EXPECT_EQ(float_to_bfloat16_bits(from_bits(0x7F7FFFFF)), 0x7F80);  // FLT_MAX rounds to inf
  EXPECT_EQ(float_to_bfloat16_bits(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_EQ(float_to_bfloat16_bits(from_bits(0x00000001)), 0x0000);  // smallest subnormal
  // NaN stays NaN even when its payload sits in the dropped bits.
  const uint16_t nan = float_to_bfloat16_bits(from_bits(0x7F800001));
  EXPECT_EQ(nan & 0x7F80, 0x7F80);
  EXPECT_NE(nan & 0x007F, 0);
  EXPECT_TRUE(std::isnan(bfloat16_bits_to_float(nan)));
}

TEST(HalfFloatTest, Float16RoundsToNearestEven) {
  EXPECT_EQ(float_to_float16_bits(1.0f), 0x3C00);
  EXPECT_EQ(float_to_float16_bits(-2.0f), 0xC000);
  EXPECT_EQ(float_to_float16_bits(0.1f), 0x2E66);
  EXPECT_EQ(float_to_float16_bits(65504.0f), 0x7BFF);                       // largest finite
  EXPECT_EQ(float_to_float16_bits(65519.0f), 0x7BFF);                       // below the tie
  EXPECT_EQ(float_to_float16_bits(65520.0f), 0x7C00);                       // tie: rounds to inf (even)
  EXPECT_EQ(float_to_float16_bits(1e6f), 0x7C00);
  EXPECT_EQ(float_to_float16_bits(1.0f + std::ldexp(1.0f, -11)), 0x3C00);   // tie, even below
  EXPECT_EQ(float_to_float16_bits(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie, even above
  EXPECT_EQ(float_to_float16_bits(std::ldexp(1.0f, -14)), 0x0400);          // smallest normal
  EXPECT_EQ(float_to_float16_bits(std::ldexp(1.0f, -24)), 0x0001);          // smallest subnormal
  EXPECT_EQ(float_to_float16_bits(std::ldexp(1.0f, -25)), 0x0000);          // tie with 0: even
  EXPECT_EQ(float_to_float16_bits(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(float_to_float16_bits(std::ldexp(3.0f, -25)), 0x0002);          // 1.5 ulp: tie, even above
  EXPECT_EQ(float_to_float16_bits(std::ldexp(1.0f, -26)), 0x0000);
  EXPECT_EQ(float_to_float16_bits(-std::ldexp(1.0f, -24)), 0x8001);
  EXPECT_EQ(float_to_float16_bits(std::ldexp(1023.0f, -24) + std::ldexp(1.0f, -25)), 0x0400);  // carry to normal
  EXPECT_EQ(float_to_float16_bits(std::numeric_limits<float>::infinity()), 0x7C00);
  const uint16_t nan = float_to_float16_bits(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x03FF, 0);
}

TEST(HalfFloatTest, DecodingInvertsEncodingOnEveryFloat16) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const uint16_t h = static_cast<uint16_t>(bits);
    const float f = float16_bits_to_float(h);
    if (std::isnan(f)) {
      EXPECT_EQ(h & 0x7C00, 0x7C00);
      continue;
    }
    ASSERT_EQ(float_to_float16_bits(f), h) << std::hex << bits;
  }
  EXPECT_EQ(float16_bits_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(float16_bits_to_float(0x3C00), 1.0f);
  EXPECT_EQ(bfloat16_bits_to_float(0x3F80), 1.0f);
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const float f = bfloat16_bits_to_float(static_cast<uint16_t>(bits));
    if (!std::isnan(f)) {
      ASSERT_EQ(float_to_bfloat16_bits(f), bits) << std::hex << bits;
    }
  }
}

}  // namespace
}  // namespace shardplan
