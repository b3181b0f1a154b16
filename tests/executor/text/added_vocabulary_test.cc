// Added tokens through a whole tokenizer: ids as tokenizers assigns them, leftmost-longest
// matching, lstrip / rstrip / single_word, raw versus normalized matching, decode of specials.
// The expected ids are tokenizers' own for the same file.
#include "executor/text/added_vocabulary.h"

#include <gtest/gtest.h>

#include "executor/text/tokenizer.h"
#include "tests/executor/text/tokenizer_files.h"

namespace shardplan {
namespace {

using Ids = std::vector<int64_t>;

nlohmann::json added(int id, const char* content, bool single_word, bool lstrip, bool rstrip, bool normalized,
                     bool special) {
  return {{"id", id},         {"content", content},       {"single_word", single_word}, {"lstrip", lstrip},
          {"rstrip", rstrip}, {"normalized", normalized}, {"special", special}};
}

// tiny_bpe plus " " (id 11) in the vocabulary and five added tokens. NOTE: "<s>" says id 11, which
// " " has: tokenizers gives it the next free id, 12, and the others 13..16.
Tokenizer with_added_tokens() {
  nlohmann::json j = testing::tiny_bpe();
  j["model"]["vocab"][" "] = 11;
  j["added_tokens"] = {
      added(11, "<s>", false, false, false, false, true), added(12, "[M]", false, true, true, false, true),
      added(13, "cab", true, false, false, false, false), added(14, "ba", false, false, false, true, false),
      added(15, "<s>x", false, false, false, false, false)};
  return Tokenizer::load(testing::write_tokenizer(j));
}

TEST(AddedVocabulary, IdsAsTokenizersAssignsThem) {
  const Tokenizer t = with_added_tokens();
  EXPECT_EQ(t.token_to_id("<s>"), 12);
  EXPECT_EQ(t.token_to_id("[M]"), 13);
  EXPECT_EQ(t.token_to_id("ba"), 15);
  EXPECT_EQ(t.token_to_id(" "), 11);
  EXPECT_EQ(t.vocab_size(), 17);  // 12 in the vocabulary + 5 added
}

TEST(AddedVocabulary, MatchingRules) {
  const Tokenizer t = with_added_tokens();
  EXPECT_EQ(t.encode("a<s>b"), (Ids{1, 12, 2}));
  EXPECT_EQ(t.encode("a <s>x"), (Ids{1, 11, 16}));  // the longest token at the leftmost place
  EXPECT_EQ(t.encode("<s><s>"), (Ids{12, 12}));
  EXPECT_EQ(t.encode("ab  [M]  c"), (Ids{4, 13, 3}));  // lstrip and rstrip take the spaces
  EXPECT_EQ(t.encode("a\u3000[M]"), (Ids{1, 13}));     // any White_Space
  // single_word: "cab" inside "acab" is no match (and is tokenized by the model: a c ab).
  EXPECT_EQ(t.encode("cab acab cab"), (Ids{14, 11, 1, 3, 4, 11, 14}));
  // "ba" (normalized: true) is matched in the normalized text, after the raw tokens.
  EXPECT_EQ(t.encode("abab"), (Ids{1, 15, 2}));
}

TEST(AddedVocabulary, DecodeSkipsSpecialTokensAndUnknownIds) {
  const Tokenizer t = with_added_tokens();
  // No decoder: tokens joined with " "; 99 has no token and is dropped.
  EXPECT_EQ(t.decode({11, 1, 12, 13, 14, 99, 2}), "  a <s> [M] cab b");
  EXPECT_EQ(t.decode({11, 1, 12, 13, 14, 99, 2}, true), "  a cab b");
}

TEST(AddedVocabulary, NormalizedTokensShowTheirNormalizedForm) {
  // With a Lowercase normalizer, a normalized: true token "HeY" is matched as "hey" and decodes
  // as "hey"; a normalized: false one is matched as written.
  nlohmann::json j = testing::tiny_bpe();
  j["normalizer"] = {{"type", "Lowercase"}};
  j["added_tokens"] = {added(11, "HeY", false, false, false, true, false),
                       added(12, "RAW", false, false, false, false, false)};
  const Tokenizer t = Tokenizer::load(testing::write_tokenizer(j));
  EXPECT_EQ(t.encode("aHEYbRAWraw"), (Ids{1, 11, 2, 12, 0, 1, 0}));  // r <unk>, w <unk>
  EXPECT_EQ(t.decode({11, 12}), "hey RAW");
}

}  // namespace
}  // namespace shardplan
