// The BPE model: merge order, both merge forms, byte fallback, unk fusing, ignore_merges, refusals.
#include "executor/text/bpe_model.h"

#include <gtest/gtest.h>

#include "executor/text/tokenizer_error.h"
#include "tests/executor/text/tokenizer_files.h"

namespace shardplan {
namespace {

std::vector<int64_t> tokenize(const nlohmann::json& model, const std::string& word) {
  const BpeModel bpe = BpeModel::parse(model, "model");
  std::vector<int64_t> ids;
  bpe.tokenize(word, ids);
  return ids;
}

using Ids = std::vector<int64_t>;

// Merges in the [["a", "b"], ...] form. NOTE: built explicitly: nlohmann reads {"b", "c"} as an
// object {"b": "c"}.
nlohmann::json pairs(const std::vector<std::pair<std::string, std::string>>& merges) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [a, b] : merges) out.push_back(nlohmann::json::array({a, b}));
  return out;
}

TEST(BpeModel, MergesByRank) {
  // Vocabulary: <unk>0 a1 b2 c3 ab4 bc5 abc6 <0x41>7 <0x42>8 <0xC3>9 <0xA9>10.
  const nlohmann::json ab_first = testing::tiny_bpe(nlohmann::json::array({"a b", "ab c"}))["model"];
  EXPECT_EQ(tokenize(ab_first, "abc"), (Ids{6}));
  EXPECT_EQ(tokenize(ab_first, "abcab"), (Ids{6, 4}));
  // [b, c] ranked first: "abc" becomes a + bc, and ab + c never meet.
  const nlohmann::json bc_first = testing::tiny_bpe(pairs({{"b", "c"}, {"a", "b"}, {"ab", "c"}}))["model"];
  EXPECT_EQ(tokenize(bc_first, "abc"), (Ids{1, 5}));
  EXPECT_EQ(tokenize(bc_first, "abcab"), (Ids{1, 5, 4}));
}

TEST(BpeModel, IgnoreMergesTakesWholeVocabularyWords) {
  nlohmann::json model = testing::tiny_bpe(pairs({{"b", "c"}, {"a", "b"}, {"ab", "c"}}))["model"];
  model["ignore_merges"] = true;
  EXPECT_EQ(tokenize(model, "abc"), (Ids{6}));
  EXPECT_EQ(tokenize(model, "abcab"), (Ids{1, 5, 4}));  // not a vocabulary word: merged as usual
}

TEST(BpeModel, ByteFallbackAndFusedUnknowns) {
  const nlohmann::json model = testing::tiny_bpe()["model"];
  // x and y have neither a token nor byte tokens: one fused <unk>; A and é fall back to bytes.
  // NOTE: as in tokenizers, the pending <unk> is emitted only at the next vocabulary character
  // (or the end), after the byte tokens.
  EXPECT_EQ(tokenize(model, "xyAé"), (Ids{7, 9, 10, 0}));
  EXPECT_EQ(tokenize(model, "xxa"), (Ids{0, 1}));
  nlohmann::json unfused = model;
  unfused["fuse_unk"] = false;
  EXPECT_EQ(tokenize(unfused, "xxa"), (Ids{0, 0, 1}));
  nlohmann::json no_unk = model;
  no_unk["unk_token"] = nullptr;
  EXPECT_EQ(tokenize(no_unk, "xxa"), (Ids{1}));  // unknown characters vanish without unk_token
}

TEST(BpeModel, VocabularyLookups) {
  const BpeModel bpe = BpeModel::parse(testing::tiny_bpe()["model"], "model");
  EXPECT_EQ(bpe.size(), 11);
  EXPECT_EQ(bpe.token_to_id("abc"), 6);
  EXPECT_EQ(bpe.token_to_id("zz"), std::nullopt);
  ASSERT_NE(bpe.id_to_token(4), nullptr);
  EXPECT_EQ(*bpe.id_to_token(4), "ab");
  EXPECT_EQ(bpe.id_to_token(99), nullptr);
}

int exit_code_of(const nlohmann::json& model) {
  try {
    BpeModel::parse(model, "model");
  } catch (const TokenizerError& e) {
    return e.exit_code();
  }
  return 0;
}

TEST(BpeModel, Refusals) {
  nlohmann::json model = testing::tiny_bpe()["model"];
  model["dropout"] = 0.1;
  EXPECT_EQ(exit_code_of(model), 2);  // random: refused
  model["dropout"] = 0.0;
  EXPECT_EQ(exit_code_of(model), 0);
  EXPECT_EQ(exit_code_of({{"type", "WordPiece"}, {"vocab", {{"a", 0}}}}), 2);
  EXPECT_EQ(exit_code_of({{"type", "Unigram"}, {"vocab", nlohmann::json::array()}}), 2);
  EXPECT_EQ(exit_code_of(testing::tiny_bpe(nlohmann::json::array({"a z"}))["model"]), 1);  // z is not in the vocabulary
  EXPECT_EQ(exit_code_of(testing::tiny_bpe(nlohmann::json::array({"b c a"}))["model"]), 1);  // three parts
  EXPECT_EQ(exit_code_of(testing::tiny_bpe(nlohmann::json::array({"c a"}))["model"]),
            1);  // "ca" is not in the vocabulary
}

}  // namespace
}  // namespace shardplan
