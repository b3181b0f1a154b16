// UTF-8 validation and Rust-compatible lossy decoding.
#include "executor/text/utf8.h"

#include <gtest/gtest.h>

namespace shardplan {
namespace {

TEST(Utf8, FindsTheFirstInvalidSequence) {
  EXPECT_EQ(find_invalid_utf8("plain ascii, longer than eight bytes"), std::string_view::npos);
  EXPECT_EQ(find_invalid_utf8("é日本🚀"), std::string_view::npos);
  EXPECT_EQ(find_invalid_utf8("ab\xC0\x80"), 2u);            // overlong NUL
  EXPECT_EQ(find_invalid_utf8("abcdefgh\xED\xA0\x80"), 8u);  // a surrogate, after an 8-byte ASCII run
  EXPECT_EQ(find_invalid_utf8("\xF4\x90\x80\x80"), 0u);      // above U+10FFFF
  EXPECT_EQ(find_invalid_utf8("x\xE6\x97"), 1u);             // truncated
  EXPECT_EQ(find_invalid_utf8("\x80"), 0u);                  // a lone continuation byte
}

TEST(Utf8, LossyReplacesEachMaximalSubpartOnce) {
  // As Rust's String::from_utf8_lossy: a truncated 4-byte sequence is one U+FFFD; bytes that can
  // start nothing are one each.
  EXPECT_EQ(utf8_lossy("a\xF0\x9F\x98"
                       "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(utf8_lossy("\xE0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(utf8_lossy("\xFF\xFE"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(utf8_lossy("ok 🚀"), "ok 🚀");
}

TEST(Utf8, StepsThroughCodePoints) {
  const std::string text = "aé日🚀";
  size_t pos = 0;
  EXPECT_EQ(next_code_point(text, pos), U'a');
  EXPECT_EQ(next_code_point(text, pos), U'é');
  EXPECT_EQ(next_code_point(text, pos), U'日');
  EXPECT_EQ(next_code_point(text, pos), U'🚀');
  EXPECT_EQ(pos, text.size());
  EXPECT_EQ(previous_code_point_start(text, text.size()), text.size() - 4);
  std::string out;
  for (const char32_t c : {U'a', U'é', U'日', U'🚀'}) append_utf8(out, c);
  EXPECT_EQ(out, text);
}

}  // namespace
}  // namespace shardplan
