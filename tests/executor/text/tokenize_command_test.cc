// `executor tokenize` over streams: encode and decode lines, --json, flags, and errors naming the
// line with exit code 1 (content) or 2 (usage, I/O).
#include "executor/cli/tokenize_command.h"

#include <gtest/gtest.h>

#include <sstream>

#include "tests/executor/text/tokenizer_files.h"

namespace shardplan {
namespace {

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result run(TokenizeOptions opts, const std::string& input) {
  std::istringstream in(input);
  std::ostringstream out, err;
  const int code = run_tokenize(opts, in, out, err);
  return {code, out.str(), err.str()};
}

// tiny_bpe with BOS (id 4) added by the template, and a "<s>" special added token (id 11).
std::string tokenizer_dir() {
  nlohmann::json j = testing::tiny_bpe();
  j["added_tokens"] = {{{"id", 11},
                        {"content", "<s>"},
                        {"single_word", false},
                        {"lstrip", false},
                        {"rstrip", false},
                        {"normalized", false},
                        {"special", true}}};
  j["post_processor"] = nlohmann::json::parse(R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "B", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "pair": [], "special_tokens": {"B": {"id": "B", "ids": [4], "tokens": ["ab"]}}})");
  j["decoder"] = {{"type", "Fuse"}};
  return testing::write_tokenizer(j);
}

TEST(TokenizeCommand, EncodesLines) {
  TokenizeOptions opts;
  opts.tokenizer = tokenizer_dir();
  EXPECT_EQ(run(opts, "abc\n<s>a\n\n").out, "[4,6]\n[4,11,1]\n[4]\n");
  opts.no_special_tokens = true;
  EXPECT_EQ(run(opts, "abc\n").out, "[6]\n");
  opts.json = true;
  EXPECT_EQ(run(opts, "\"a\\nb\"\n").out, "[1,0,2]\n");  // a, the newline as <unk>, b
}

TEST(TokenizeCommand, DecodesLines) {
  TokenizeOptions opts;
  opts.tokenizer = tokenizer_dir();
  opts.decode = true;
  EXPECT_EQ(run(opts, "[11,6,1]\n[]\n").out, "<s>abca\n\n");
  opts.skip_special_tokens = true;
  opts.json = true;
  EXPECT_EQ(run(opts, "[11,6,1]\n").out, "\"abca\"\n");
}

TEST(TokenizeCommand, ErrorsNameTheLine) {
  TokenizeOptions opts;
  opts.tokenizer = tokenizer_dir();
  Result r = run(opts, "abc\nab\xC3\n");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "[4,6]\n");
  EXPECT_NE(r.err.find("line 2: the text is not valid UTF-8"), std::string::npos) << r.err;
  opts.json = true;
  r = run(opts, "[1]\n");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("line 1: expected a JSON string"), std::string::npos) << r.err;
  opts.json = false;
  opts.decode = true;
  r = run(opts, "[1]\n[1, -2]\n");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("line 2:"), std::string::npos) << r.err;
  opts.skip_special_tokens = false;
  opts.no_special_tokens = true;
  EXPECT_EQ(run(opts, "").code, 2);  // --no-special-tokens with --decode
  opts.no_special_tokens = false;
  opts.tokenizer = testing::make_temp_dir();
  r = run(opts, "");
  EXPECT_EQ(r.code, 2);  // no tokenizer.json
  EXPECT_NE(r.err.find("tokenizer.json"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace shardplan

namespace shardplan {
namespace {

TEST(TokenizeCommand, CommandLineOptions) {
  CLI::App app;
  TokenizeOptions opts;
  add_tokenize_command(app, opts);
  const char* argv[] = {"executor", "tokenize", "--tokenizer", "models/x", "--decode", "--skip-special-tokens",
                        "--json"};
  app.parse(7, const_cast<char**>(argv));
  EXPECT_EQ(opts.tokenizer, "models/x");
  EXPECT_TRUE(opts.decode && opts.skip_special_tokens && opts.json && !opts.no_special_tokens);
  CLI::App bare;
  TokenizeOptions none;
  add_tokenize_command(bare, none);
  const char* missing[] = {"executor", "tokenize"};
  EXPECT_THROW(bare.parse(2, const_cast<char**>(missing)), CLI::RequiredError);
}

}  // namespace
}  // namespace shardplan
