// GPT-2's byte-level alphabet: every byte is shown as one printable character, so that any text
// becomes a string over 256 symbols ("Ġ" is the space, 0x20 + 0x100). The ByteLevel
// pre-tokenizer, normalizer and decoder use it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace shardplan {

// The character of each byte: bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF are themselves; the
// others get 0x100, 0x101, ... in byte order (0x00 -> U+0100, 0x20 -> U+0120 "Ġ").
const std::array<char32_t, 256>& byte_level_chars();

// `text`'s bytes, each as its character in UTF-8, appended to `out`.
void append_byte_level(std::string_view text, std::string& out);

// The byte of a byte-level character, or -1 when `c` is none of them.
int byte_level_byte(char32_t c);

}  // namespace shardplan
