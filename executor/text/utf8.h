// UTF-8 as tokenizers need it: validating input text, stepping through code points, and turning
// bytes that may be invalid UTF-8 back into text the way Rust's String::from_utf8_lossy does
// (the decoders of tokenizer.json produce such bytes from byte-level and byte-fallback tokens).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace shardplan {

// The byte offset of the first invalid UTF-8 sequence in `text`, or npos when it is all valid.
// Overlong forms, surrogates (U+D800..U+DFFF) and code points above U+10FFFF are invalid.
size_t find_invalid_utf8(std::string_view text);

// The code point that starts at text[pos] (valid UTF-8 assumed), and the position after it.
inline char32_t next_code_point(std::string_view text, size_t& pos) {
  const auto b0 = static_cast<unsigned char>(text[pos]);
  if (b0 < 0x80) {
    pos += 1;
    return b0;
  }
  if (b0 < 0xE0) {
    const char32_t c = ((b0 & 0x1Fu) << 6) | (static_cast<unsigned char>(text[pos + 1]) & 0x3Fu);
    pos += 2;
    return c;
  }
  if (b0 < 0xF0) {
    const char32_t c = ((b0 & 0x0Fu) << 12) | ((static_cast<unsigned char>(text[pos + 1]) & 0x3Fu) << 6) |
                       (static_cast<unsigned char>(text[pos + 2]) & 0x3Fu);
    pos += 3;
    return c;
  }
  const char32_t c = ((b0 & 0x07u) << 18) | ((static_cast<unsigned char>(text[pos + 1]) & 0x3Fu) << 12) |
                     ((static_cast<unsigned char>(text[pos + 2]) & 0x3Fu) << 6) |
                     (static_cast<unsigned char>(text[pos + 3]) & 0x3Fu);
  pos += 4;
  return c;
}

// The length in bytes of the UTF-8 sequence that starts with byte `b0` (valid UTF-8 assumed).
inline size_t utf8_length(unsigned char b0) { return b0 < 0x80 ? 1 : b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : 4; }

// The start of the code point that ends at text[end] (exclusive), valid UTF-8 assumed.
inline size_t previous_code_point_start(std::string_view text, size_t end) {
  size_t pos = end - 1;
  while (pos > 0 && (static_cast<unsigned char>(text[pos]) & 0xC0u) == 0x80u) --pos;
  return pos;
}

void append_utf8(std::string& out, char32_t c);

// `bytes` as text: each maximal invalid subsequence becomes one U+FFFD, as Rust's
// String::from_utf8_lossy (and Python's bytes.decode(errors="replace")) do.
std::string utf8_lossy(std::string_view bytes);

}  // namespace shardplan
