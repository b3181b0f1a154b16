// Oniguruma patterns on PCRE2: the rewritten constructs and find_iter's empty-match rule.
#include "executor/text/regex.h"

#include <gtest/gtest.h>

#include <tuple>

#include "executor/text/pre_tokenizer.h"
#include "executor/text/tokenizer_error.h"

namespace shardplan {
namespace {

std::vector<std::string> matches(const std::string& pattern, const std::string& text) {
  const Regex regex = Regex::compile_oniguruma(pattern, "test");
  std::vector<std::pair<size_t, size_t>> found;
  regex.find_matches(text, found);
  std::vector<std::string> out;
  for (const auto& [s, e] : found) out.push_back(text.substr(s, e - s));
  return out;
}

TEST(Regex, TranslatesTheConstructsWhoseMeaningDiffers) {
  EXPECT_EQ(translate_oniguruma(R"(\s+(?!\S))"), R"([\p{Z}\t-\r\x{85}]+(?![^\p{Z}\t-\r\x{85}]))");
  EXPECT_EQ(translate_oniguruma(R"( ?[^\s\p{L}\p{N}]+)"), R"( ?[^\p{Z}\t-\r\x{85}\p{L}\p{N}]+)");
  EXPECT_EQ(translate_oniguruma(R"(\w\h)"), R"([\p{L}\p{M}\p{N}\p{Pc}][0-9A-Fa-f])");
  EXPECT_EQ(translate_oniguruma(R"((?im:a.b)\\s)"), R"((?is:a.b)\\s)");  // an escaped backslash stays
  EXPECT_EQ(translate_oniguruma(R"([]\s])"), R"([]\p{Z}\t-\r\x{85}])");  // ']' first is literal
  EXPECT_THROW(translate_oniguruma(R"([^\S])"), std::invalid_argument);
}

TEST(Regex, WhitespaceIsOnigurumasWhiteSpace) {
  // U+0085 is White_Space; U+180E (Mongolian vowel separator) is not, though PCRE2's \s has it.
  EXPECT_EQ(matches(R"(\s)", "a\u0085b\u180Ec\u3000"), (std::vector<std::string>{"\u0085", "\u3000"}));
  // Oniguruma's \w takes marks (U+0301).
  EXPECT_EQ(matches(R"(\w+)", "e\u0301 x"), (std::vector<std::string>{"e\u0301", "x"}));
}

TEST(Regex, RubySyntaxAnchorsAndDotAll) {
  EXPECT_EQ(matches("^a", "a\na"), (std::vector<std::string>{"a", "a"}));  // ^ at every line
  EXPECT_EQ(matches("(?m)a.b", "a\nb"), (std::vector<std::string>{"a\nb"}));
  EXPECT_EQ(matches("a.b", "a\nb"), std::vector<std::string>{});
}

TEST(Regex, NoEmptyMatchWhereTheLastMatchEnded) {
  // Oniguruma's find_iter on "abc" with x*: empty matches at 0, 1, 2, 3 (each after a skipped
  // character), never twice at one place.
  EXPECT_EQ(matches("x*", "abc"), (std::vector<std::string>{"", "", "", ""}));
  EXPECT_EQ(matches("a*", "baa"), (std::vector<std::string>{"", "aa"}));
}

TEST(Regex, Gpt2PatternSplitsWords) {
  EXPECT_EQ(matches(kGpt2Pattern, "Hello world's  123 !!\n\n"),
            (std::vector<std::string>{"Hello", " world", "'s", " ", " 123", " !!", "\n\n"}));
}

TEST(Regex, RefusesWhatDoesNotCompile) {
  try {
    Regex::compile_oniguruma("(unclosed", "pre_tokenizer.pattern");
    FAIL() << "compiled";
  } catch (const TokenizerError& e) {
    EXPECT_EQ(e.exit_code(), 1);
    EXPECT_NE(std::string(e.what()).find("pre_tokenizer.pattern"), std::string::npos) << e.what();
  }
}

TEST(SplitPattern, LiteralSpansCoverTheText) {
  const SplitPattern pattern = SplitPattern::literal("--", "test");
  std::vector<PatternSpan> spans;
  pattern.find_spans("a----b--", spans);
  // a | -- | -- | b | --
  const std::vector<std::tuple<size_t, size_t, bool>> want = {
      {0, 1, false}, {1, 3, true}, {3, 5, true}, {5, 6, false}, {6, 8, true}};
  ASSERT_EQ(spans.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(std::make_tuple(spans[i].start, spans[i].end, spans[i].is_match), want[i]) << i;
  }
  EXPECT_THROW(SplitPattern::literal("", "test"), TokenizerError);
}

}  // namespace
}  // namespace shardplan
