// Decoders: each step on a worked example (values from tokenizers).
#include "executor/text/decoder.h"

#include <gtest/gtest.h>

#include "executor/text/tokenizer_error.h"

namespace shardplan {
namespace {

std::string decode(const nlohmann::json& spec, std::vector<std::string> tokens) {
  return Decoder::parse(spec, "decoder").decode(std::move(tokens));
}

TEST(Decoder, ByteFallbackReplacesEachByteOfAnInvalidRun) {
  EXPECT_EQ(decode({{"type", "ByteFallback"}}, {"<0xE2>", "<0x82>", "a", "<0xE2>", "<0x82>", "<0xAC>"}),
            "\uFFFD\uFFFDa€");
}

TEST(Decoder, ByteLevelIsLossyOverAllTokens) {
  // "Ġ" is the space; "ðŁ" + "ļ" + "Ģ" are the bytes of 🚀 split over tokens; a lone 0xF0 is U+FFFD.
  EXPECT_EQ(decode({{"type", "ByteLevel"}}, {"Hi", "Ġthere", "ĠðŁ", "ļ", "Ģ"}), "Hi there 🚀");
  EXPECT_EQ(decode({{"type", "ByteLevel"}}, {"ð", "!"}), "\uFFFD!");
  // A token with a character outside the alphabet keeps its own UTF-8.
  EXPECT_EQ(decode({{"type", "ByteLevel"}}, {"日本", "Ġx"}), "日本 x");
}

TEST(Decoder, LlamaTwoSequence) {
  const nlohmann::json spec = nlohmann::json::parse(R"({"type": "Sequence", "decoders": [
      {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
      {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]})");
  EXPECT_EQ(decode(spec, {"▁Hello", "▁wor", "ld", "<0xF0>", "<0x9F>", "<0x9A>", "<0x80>"}), "Hello world🚀");
}

TEST(Decoder, MetaspaceDropsEveryReplacementOfTheFirstToken) {
  const nlohmann::json spec = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "always"}};
  EXPECT_EQ(decode(spec, {"▁a▁b", "▁c"}), "ab c");
  EXPECT_EQ(decode({{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "never"}}, {"▁a", "▁c"}), " a c");
}

TEST(Decoder, WordPieceAndBpeSuffix) {
  EXPECT_EQ(decode({{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}, {"un", "##believ", "##able", "!"}),
            "unbelievable!");
  EXPECT_EQ(decode({{"type", "BPEDecoder"}, {"suffix", "</w>"}}, {"hel", "lo</w>", "you</w>"}), "hello you");
}

TEST(Decoder, NoDecoderJoinsWithSpaces) { EXPECT_EQ(decode(nullptr, {"a", "b"}), "a b"); }

TEST(Decoder, RefusesUnknownOnes) {
  try {
    Decoder::parse({{"type", "CTC"}}, "decoder");
    FAIL() << "accepted CTC";
  } catch (const TokenizerError& e) {
    EXPECT_EQ(e.exit_code(), 2);
  }
}

}  // namespace
}  // namespace shardplan
