// GPT-2's byte <-> character map (see byte_level.h).
#include "executor/text/byte_level.h"

#include "executor/text/utf8.h"

namespace shardplan {
namespace {

struct ByteLevelTables {
  std::array<char32_t, 256> chars{};
  std::array<std::string, 256> utf8;
  std::array<int16_t, 512> bytes{};  // every byte-level character is below U+0200
  ByteLevelTables() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool shown = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      chars[b] = shown ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
    }
    bytes.fill(-1);
    for (int b = 0; b < 256; ++b) {
      append_utf8(utf8[b], chars[b]);
      bytes[chars[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteLevelTables& tables() {
  static const ByteLevelTables t;
  return t;
}

}  // namespace

const std::array<char32_t, 256>& byte_level_chars() { return tables().chars; }

void append_byte_level(std::string_view text, std::string& out) {
  const ByteLevelTables& t = tables();
  for (const char ch : text) out += t.utf8[static_cast<unsigned char>(ch)];
}

int byte_level_byte(char32_t c) { return c < 512 ? tables().bytes[c] : -1; }

}  // namespace shardplan
