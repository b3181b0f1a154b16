// Tokenizer: loading (paths, errors and their exit codes), end-of-sequence ids, the template
// post-processor, refusing invalid UTF-8, and SmolLM2's real tokenizer.json on known prompts.
#include "executor/text/tokenizer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "tests/executor/text/tokenizer_files.h"

namespace shardplan {
namespace {

using Ids = std::vector<int64_t>;

int load_exit_code(const std::string& path) {
  try {
    Tokenizer::load(path);
  } catch (const TokenizerError& e) {
    return e.exit_code();
  }
  return 0;
}

TEST(Tokenizer, LoadsAFolderOrTheFile) {
  const std::string dir = testing::write_tokenizer(testing::tiny_bpe());
  EXPECT_EQ(Tokenizer::load(dir).encode("abc"), (Ids{6}));
  EXPECT_EQ(Tokenizer::load(dir + "/tokenizer.json").encode("abc"), (Ids{6}));
}

TEST(Tokenizer, LoadErrorsAndTheirExitCodes) {
  const std::string dir = testing::make_temp_dir();
  EXPECT_EQ(load_exit_code(dir), 2);  // no tokenizer.json: I/O
  const std::string fifo = dir + "/tokenizer.json";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(load_exit_code(dir), 2);                                                // a FIFO is refused, not opened
  EXPECT_EQ(load_exit_code(testing::write_tokenizer(nlohmann::json::array())), 1);  // not an object
  const std::string broken = testing::make_temp_dir();
  std::ofstream(broken + "/tokenizer.json") << "{\"model\": ";
  EXPECT_EQ(load_exit_code(broken), 1);  // not JSON
  nlohmann::json wordpiece = testing::tiny_bpe();
  wordpiece["model"]["type"] = "WordPiece";
  EXPECT_EQ(load_exit_code(testing::write_tokenizer(wordpiece)), 2);  // not supported
  try {
    nlohmann::json bad = testing::tiny_bpe();
    bad["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "("}}}, {"behavior", "Isolated"}};
    Tokenizer::load(testing::write_tokenizer(bad));
    FAIL() << "loaded a pattern that does not compile";
  } catch (const TokenizerError& e) {
    EXPECT_EQ(e.exit_code(), 1);
    EXPECT_NE(std::string(e.what()).find("pre_tokenizer.pattern"), std::string::npos) << e.what();
  }
}

TEST(Tokenizer, EndOfSequenceIds) {
  const nlohmann::json j = testing::tiny_bpe();
  EXPECT_EQ(Tokenizer::load(testing::write_tokenizer(j)).eos_token_ids(), Ids{});
  // generation_config.json first (a list), then config.json (an id), then tokenizer_config.json.
  EXPECT_EQ(Tokenizer::load(testing::write_tokenizer(j, {{"generation_config.json", R"({"eos_token_id": [5, 6]})"},
                                                         {"config.json", R"({"eos_token_id": 1})"}}))
                .eos_token_ids(),
            (Ids{5, 6}));
  EXPECT_EQ(Tokenizer::load(testing::write_tokenizer(j, {{"generation_config.json", R"({"bos_token_id": 0})"},
                                                         {"config.json", R"({"eos_token_id": 1})"}}))
                .eos_token_ids(),
            (Ids{1}));
  EXPECT_EQ(
      Tokenizer::load(testing::write_tokenizer(j, {{"tokenizer_config.json", R"({"eos_token": {"content": "abc"}})"}}))
          .eos_token_ids(),
      (Ids{6}));
  EXPECT_EQ(load_exit_code(testing::write_tokenizer(j, {{"config.json", R"({"eos_token_id": "x"})"}})), 1);
}

TEST(Tokenizer, TemplateAddsSpecialTokensOnlyWhenAsked) {
  nlohmann::json j = testing::tiny_bpe();
  j["post_processor"] = nlohmann::json::parse(R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "</s>", "type_id": 0}}],
      "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [4], "tokens": ["<s>"]},
                                     "</s>": {"id": "</s>", "ids": [5, 6], "tokens": ["x", "y"]}}})");
  const Tokenizer t = Tokenizer::load(testing::write_tokenizer(j));
  EXPECT_EQ(t.encode("abc"), (Ids{4, 6, 5, 6}));
  EXPECT_EQ(t.encode("abc", false), (Ids{6}));
  EXPECT_EQ(t.encode(""), (Ids{4, 5, 6}));
}

TEST(Tokenizer, RefusesInvalidUtf8AndNegativeIds) {
  const Tokenizer t = Tokenizer::load(testing::write_tokenizer(testing::tiny_bpe()));
  try {
    t.encode("ab\xC3(");
    FAIL() << "encoded invalid UTF-8";
  } catch (const TokenizerError& e) {
    EXPECT_EQ(e.exit_code(), 1);
    EXPECT_NE(std::string(e.what()).find("byte 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(t.decode({1, -1}), TokenizerError);
}

// SmolLM2-135M-Instruct's tokenizer.json (scripts/setup.sh); ids from tokenizers 0.23.3.
TEST(Tokenizer, SmolLM2Prompts) {
  const std::string dir = std::string(SHARDPLAN_SOURCE_DIR) + "/build/models/smollm2-135m-instruct";
  struct stat st {};
  if (::stat((dir + "/tokenizer.json").c_str(), &st) != 0) {
    GTEST_SKIP() << dir << "/tokenizer.json is absent (scripts/setup.sh downloads it)";
  }
  const Tokenizer t = Tokenizer::load(dir);
  const Ids chat = {1, 4093, 198, 26843, 665, 17, 2, 198};
  EXPECT_EQ(t.encode("<|im_start|>user\nHi there!<|im_end|>\n"), chat);
  EXPECT_EQ(t.decode(chat), "<|im_start|>user\nHi there!<|im_end|>\n");
  EXPECT_EQ(t.decode(chat, true), "user\nHi there!\n");
  EXPECT_EQ(t.encode("  tabs\tand 123456 🧑‍💻"),
            (Ids{216, 29416, 197, 397, 216, 33, 34, 35, 36, 37, 38, 15107, 117, 235, 321, 231, 10813, 236, 136}));
  EXPECT_EQ(t.eos_token_ids(), Ids{2});
  EXPECT_EQ(t.vocab_size(), 49152);
  EXPECT_EQ(t.token_to_id("<|im_end|>"), 2);
  EXPECT_EQ(t.id_to_token(19556), "Hello");
}

}  // namespace
}  // namespace shardplan
