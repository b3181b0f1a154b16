// float32 <-> bfloat16 / float16 bit conversions, round-to-nearest-even, in plain integer code so
// they give the same bits on every platform (no dependence on the FPU or compiler flags).
#pragma once

#include <cstdint>

namespace shardplan {

// Round-to-nearest, ties to even; overflow gives +-inf; NaN stays NaN (quiet, sign kept).
// Examples: 1.0f -> 0x3F80; 1 + 2^-8 (a tie, even below) -> 0x3F80; 1 + 3 * 2^-8 -> 0x3F82 (tie, up).
uint16_t float_to_bfloat16_bits(float value);
// As above, with float16's subnormals: 2^-24 -> 0x0001, 2^-25 (a tie with 0) -> 0x0000,
// 65504 -> 0x7BFF, 65520 (a tie with inf) -> 0x7C00, 0.1f -> 0x2E66.
uint16_t float_to_float16_bits(float value);

float bfloat16_bits_to_float(uint16_t bits);
float float16_bits_to_float(uint16_t bits);

}  // namespace shardplan
