// Bit-level float32 <-> bfloat16 / float16 conversion.
#include "executor/weights/half_float.h"

#include <cstring>

namespace shardplan {

namespace {

uint32_t float_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

float bits_float(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

}  // namespace

uint16_t float_to_bfloat16_bits(float value) {
  const uint32_t bits = float_bits(value);
  if ((bits & 0x7F800000u) == 0x7F800000u && (bits & 0x007FFFFFu) != 0) {
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // NaN: keep sign and payload top, force quiet
  }
  // Adding 0x7FFF rounds up when the dropped half is above 0x8000; the low kept bit breaks ties to even.
  // A carry out of the mantissa bumps the exponent, which is the correct result (up to +-inf).
  const uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

uint16_t float_to_float16_bits(float value) {
  const uint32_t bits = float_bits(value);
  const uint32_t sign = (bits >> 16) & 0x8000u;
  const uint32_t exponent = (bits >> 23) & 0xFFu;
  uint32_t mantissa = bits & 0x007FFFFFu;

  if (exponent == 0xFFu) {  // inf or NaN
    return static_cast<uint16_t>(sign | 0x7C00u | (mantissa != 0 ? 0x0200u | (mantissa >> 13) : 0u));
  }
  const int32_t half_exponent = static_cast<int32_t>(exponent) - 127 + 15;
  if (half_exponent >= 31) return static_cast<uint16_t>(sign | 0x7C00u);  // overflow: inf

  if (half_exponent <= 0) {  // a float16 subnormal or zero
    // Values below 2^-25 round to zero; 2^-25 itself is a tie with 0 (even) and the shift below
    // would exceed 24 bits.
    if (half_exponent < -10) return static_cast<uint16_t>(sign);
    mantissa |= 0x00800000u;  // the implicit leading bit
    const uint32_t shift = static_cast<uint32_t>(14 - half_exponent);  // 14..24
    uint32_t half_mantissa = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1u);
    const uint32_t halfway = 1u << (shift - 1u);
    if (rest > halfway || (rest == halfway && (half_mantissa & 1u))) ++half_mantissa;
    return static_cast<uint16_t>(sign | half_mantissa);  // a carry makes the smallest normal: correct
  }

  uint32_t half = sign | (static_cast<uint32_t>(half_exponent) << 10) | (mantissa >> 13);
  const uint32_t rest = mantissa & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // a carry may give inf: correct
  return static_cast<uint16_t>(half);
}

float bfloat16_bits_to_float(uint16_t bits) { return bits_float(static_cast<uint32_t>(bits) << 16); }

float float16_bits_to_float(uint16_t bits) {
  const uint32_t sign = (static_cast<uint32_t>(bits) & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1Fu;
  uint32_t mantissa = bits & 0x03FFu;
  if (exponent == 0x1Fu) return bits_float(sign | 0x7F800000u | (mantissa << 13));  // inf / NaN
  if (exponent == 0) {
    if (mantissa == 0) return bits_float(sign);  // +-0
    // Subnormal: normalise the mantissa.
    int32_t e = -14;
    while ((mantissa & 0x0400u) == 0) {
      mantissa <<= 1;
      --e;
    }
    mantissa &= 0x03FFu;
    return bits_float(sign | (static_cast<uint32_t>(e + 127) << 23) | (mantissa << 13));
  }
  return bits_float(sign | ((exponent - 15 + 127) << 23) | (mantissa << 13));
}

}  // namespace shardplan
