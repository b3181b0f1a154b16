// Normalizers: each step on a worked example, the leading-removal flag, refusals.
#include "executor/text/normalizer.h"

#include <gtest/gtest.h>

#include "executor/text/tokenizer_error.h"

namespace shardplan {
namespace {

std::string run(const nlohmann::json& spec, std::string text, bool* removed = nullptr) {
  const Normalizer n = Normalizer::parse(spec, "normalizer");
  const bool r = n.normalize(text);
  if (removed) *removed = r;
  return text;
}

TEST(Normalizer, SentencePieceLegacyPrependAndReplace) {
  const nlohmann::json spec = nlohmann::json::parse(R"({"type": "Sequence", "normalizers": [
      {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]})");
  EXPECT_EQ(run(spec, "Hello big  world"), "▁Hello▁big▁▁world");
  EXPECT_EQ(run(spec, ""), "");  // nothing is prepended to an empty piece
}

TEST(Normalizer, UnicodeForms) {
  EXPECT_EQ(run({{"type", "NFC"}}, "e\u0301"), "\u00e9");
  EXPECT_EQ(run({{"type", "NFD"}}, "\u00e9"), "e\u0301");
  EXPECT_EQ(run({{"type", "NFKC"}}, "ﬁ①"), "fi1");
  EXPECT_EQ(run({{"type", "NFKD"}}, "Ǆ"), "DZ\u030c");
}

TEST(Normalizer, LowercaseIsRustsFullCharMapping) {
  // İ lowercases to "i̇" (two characters); Σ is always σ (no final-sigma context).
  EXPECT_EQ(run({{"type", "Lowercase"}}, "İSTANBUL ΣΟΦΟΣ"), "i\u0307stanbul σοφοσ");
}

TEST(Normalizer, StripReportsRemovedLeadingText) {
  bool removed = false;
  EXPECT_EQ(run({{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}}, "\u3000 x y\t\n", &removed), "x y");
  EXPECT_TRUE(removed);
  EXPECT_EQ(run({{"type", "Strip"}, {"strip_left", false}, {"strip_right", true}}, " x ", &removed), " x");
  EXPECT_FALSE(removed);
  EXPECT_EQ(run(nlohmann::json::parse(R"({"type": "Replace", "pattern": {"Regex": "^\\s+"}, "content": ""})"), "  x",
                &removed),
            "x");
  EXPECT_TRUE(removed);
}

TEST(Normalizer, BertNormalizer) {
  const nlohmann::json spec = {{"type", "BertNormalizer"},
                               {"clean_text", true},
                               {"handle_chinese_chars", true},
                               {"strip_accents", nullptr},
                               {"lowercase", true}};
  // Controls dropped, whitespace to ' ', CJK spaced, accents stripped (lowercase implies it).
  EXPECT_EQ(run(spec, "Héllo\x01\tWörld中文"), "hello world 中  文 ");
}

TEST(Normalizer, RefusesUnknownOnesByName) {
  try {
    Normalizer::parse({{"type", "Precompiled"}, {"precompiled_charsmap", "AAAA"}}, "normalizer");
    FAIL() << "accepted Precompiled";
  } catch (const TokenizerError& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find("'Precompiled'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Normalizer::parse({{"type", "Replace"}, {"content", "x"}}, "normalizer"), TokenizerError);
}

}  // namespace
}  // namespace shardplan
