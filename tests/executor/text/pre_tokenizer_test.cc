// Pre-tokenizers: split behaviours, ByteLevel, Metaspace's prepend schemes, Digits, Punctuation.
#include "executor/text/pre_tokenizer.h"

#include <gtest/gtest.h>

#include "executor/text/tokenizer_error.h"

namespace shardplan {
namespace {

std::vector<std::string> run(const nlohmann::json& spec, const std::string& text, bool at_input_start = true) {
  const PreTokenizer p = PreTokenizer::parse(spec, "pre_tokenizer");
  std::vector<TextPiece> pieces(1);
  pieces[0].text = text;
  pieces[0].at_input_start = at_input_start;
  p.pre_tokenize(pieces);
  std::vector<std::string> out;
  for (const TextPiece& piece : pieces) out.push_back(piece.text);
  return out;
}

using Words = std::vector<std::string>;

TEST(PreTokenizer, SplitBehaviours) {
  const auto split = [](const char* behavior) {
    return run({{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", false}},
               "The-final--countdown");
  };
  EXPECT_EQ(split("Removed"), (Words{"The", "final", "countdown"}));
  EXPECT_EQ(split("Isolated"), (Words{"The", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(split("MergedWithPrevious"), (Words{"The-", "final-", "-", "countdown"}));
  EXPECT_EQ(split("MergedWithNext"), (Words{"The", "-final", "-", "-countdown"}));
  EXPECT_EQ(split("Contiguous"), (Words{"The", "-", "final", "--", "countdown"}));
  // invert: the matches of the pattern (the words) become the kept pieces; Removed drops the rest.
  EXPECT_EQ(
      run({{"type", "Split"}, {"pattern", {{"Regex", "\\w+"}}}, {"behavior", "Removed"}, {"invert", true}}, "a, b"),
      (Words{"a", "b"}));
  EXPECT_THROW(split("Sideways"), TokenizerError);
}

TEST(PreTokenizer, ByteLevelMapsBytesAfterGpt2Split) {
  EXPECT_EQ(run({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}, "Hi  é\n"),
            (Words{"Hi", "Ġ", "ĠÃ©", "Ċ"}));
  EXPECT_EQ(run({{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", false}}, "Hi you"),
            (Words{"ĠHiĠyou"}));
}

TEST(PreTokenizer, MetaspacePrependSchemes) {
  const auto metaspace = [](const char* scheme, bool split) {
    return nlohmann::json{{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", scheme}, {"split", split}};
  };
  EXPECT_EQ(run(metaspace("always", true), "Hey friend  x"), (Words{"▁Hey", "▁friend", "▁", "▁x"}));
  EXPECT_EQ(run(metaspace("first", false), "Hey you"), (Words{"▁Hey▁you"}));
  // "first": only a piece that starts the input gets the prefix (not one after an added token).
  EXPECT_EQ(run(metaspace("first", false), "Hey you", false), (Words{"Hey▁you"}));
  EXPECT_EQ(run(metaspace("never", false), "Hey you"), (Words{"Hey▁you"}));
}

TEST(PreTokenizer, DigitsPunctuationWhitespace) {
  EXPECT_EQ(run({{"type", "Digits"}, {"individual_digits", true}}, "a12b"), (Words{"a", "1", "2", "b"}));
  EXPECT_EQ(run({{"type", "Digits"}, {"individual_digits", false}}, "a12b٣"), (Words{"a", "12", "b", "٣"}));
  EXPECT_EQ(run({{"type", "Punctuation"}, {"behavior", "Contiguous"}}, "hi!?¿x$"), (Words{"hi", "!?¿", "x", "$"}));
  EXPECT_EQ(run({{"type", "Whitespace"}}, "it's  a-b"), (Words{"it", "'", "s", "a", "-", "b"}));
  EXPECT_EQ(run({{"type", "WhitespaceSplit"}}, " a\u3000b\u0085c "), (Words{"a", "b", "c"}));
}

TEST(PreTokenizer, RefusesUnknownOnes) {
  try {
    PreTokenizer::parse({{"type", "UnicodeScripts"}}, "pre_tokenizer");
    FAIL() << "accepted UnicodeScripts";
  } catch (const TokenizerError& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find("'UnicodeScripts'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace shardplan
