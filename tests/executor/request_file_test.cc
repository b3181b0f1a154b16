// --requests files: requests are read as written (text through the given tokenizer, ids as they
// are, every sampling and stopping field); every malformed line, unknown or not-yet-supported key
// is an error naming the file, the line and the field. Where a request ends: EOS, max_tokens, stop.
#include "executor/runtime/request_file.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "executor/runtime/run_error.h"

namespace shardplan {
namespace {

// A stand-in tokenizer: one id per byte (a byte's value), and "" gives no token.
std::vector<int64_t> bytes_of(const std::string& text) { return std::vector<int64_t>(text.begin(), text.end()); }

class RequestFileTest : public ::testing::Test {
 protected:
  std::string write(const std::string& text) {
    path_ = (std::filesystem::temp_directory_path() /
             ("shardplan_requests_" + std::to_string(::getpid()) + ".jsonl")).string();
    std::ofstream(path_) << text;
    return path_;
  }
  void TearDown() override { std::filesystem::remove(path_); }
  // The message of the RunError reading `text` throws (vocabulary 1000, the byte tokenizer).
  std::string error_of(const std::string& text, bool with_tokenizer = true) {
    try {
      read_request_file(write(text), 1000, with_tokenizer ? TokenizeFn(bytes_of) : TokenizeFn());
    } catch (const RunError& e) {
      EXPECT_EQ(e.exit_code(), 2);
      return e.what();
    }
    ADD_FAILURE() << "no error for: " << text;
    return "";
  }
  std::string path_;
};

TEST_F(RequestFileTest, ReadsEveryFieldAndPromptsOfAnyLength) {
  const std::vector<Request> r = read_request_file(
      write("{\"prompt_token_ids\": [1, 2, 3], \"max_tokens\": 4}\n\n"
            "{\"prompt\": \"hi!\", \"temperature\": 0.7, \"top_p\": 0.9, \"top_k\": 5, \"seed\": 12, "
            "\"stop\": [\"\\n\", \"END\"], \"ignore_eos\": true}\n"
            "{\"prompt_token_ids\": [999], \"stop\": \"x\", \"top_k\": -1}\n"),
      1000, bytes_of);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].prompt_ids, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(r[0].max_tokens, 4);
  EXPECT_FALSE(r[0].text_prompt);
  EXPECT_EQ(r[0].sampling.temperature, 0);  // greedy unless asked
  EXPECT_EQ(r[1].prompt_ids, (std::vector<int64_t>{'h', 'i', '!'}));
  EXPECT_TRUE(r[1].text_prompt);
  EXPECT_EQ(r[1].max_tokens, 16);  // vLLM's default
  EXPECT_DOUBLE_EQ(r[1].sampling.temperature, 0.7);
  EXPECT_DOUBLE_EQ(r[1].sampling.top_p, 0.9);
  EXPECT_EQ(r[1].sampling.top_k, 5);
  EXPECT_EQ(r[1].sampling.seed, 12u);
  EXPECT_EQ(r[1].stop, (std::vector<std::string>{"\n", "END"}));
  EXPECT_TRUE(r[1].ignore_eos);
  EXPECT_EQ(r[2].stop, (std::vector<std::string>{"x"}));
  EXPECT_EQ(r[2].sampling.top_k, 0);  // -1: every token, as vLLM
}

TEST_F(RequestFileTest, MediaPathsAreRelativeToTheRequestsFile) {
  const std::vector<Request> r =
      read_request_file(write("{\"prompt_token_ids\": [1], \"images\": [\"a.png\", \"/abs/b.jpg\"], "
                              "\"audio\": \"s/x.wav\"}\n"),
                        1000, TokenizeFn());
  const std::string dir = std::filesystem::path(path_).parent_path().string();
  EXPECT_EQ(r[0].images, (std::vector<std::string>{dir + "/a.png", "/abs/b.jpg"}));
  EXPECT_EQ(r[0].audio, dir + "/s/x.wav");
}

TEST_F(RequestFileTest, EveryMistakeNamesTheLineAndTheField) {
  const std::string ok = "{\"prompt_token_ids\": [1, 2], \"max_tokens\": 3}\n";
  const auto expect_has = [&](const std::string& text, const std::vector<std::string>& parts, bool tokenizer = true) {
    const std::string message = error_of(text, tokenizer);
    for (const std::string& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message;
  };
  expect_has(ok + "{\"prompt_token_ids\": [1, 2], \"max_tokens\": 3\n", {":2:", "not valid JSON"});
  expect_has(ok + "[1, 2]\n", {":2:", "expected a JSON object"});
  expect_has("{\"max_tokens\": 3}\n", {":1:", "exactly one of 'prompt' and 'prompt_token_ids'"});
  expect_has("{\"prompt\": \"a\", \"prompt_token_ids\": [1]}\n", {":1:", "exactly one of"});
  expect_has("{\"prompt_token_ids\": [], \"max_tokens\": 3}\n", {":1:", "non-empty array"});
  expect_has("{\"prompt_token_ids\": [1, 1000], \"max_tokens\": 3}\n", {":1:", "'prompt_token_ids'[1] is 1000", "[0, 1000)"});
  expect_has("{\"prompt_token_ids\": [1, -1], \"max_tokens\": 3}\n", {"'prompt_token_ids'[1] is -1"});
  expect_has("{\"prompt_token_ids\": [1, 2.5], \"max_tokens\": 3}\n", {"'prompt_token_ids'[1] is 2.5"});
  expect_has("{\"prompt_token_ids\": [1], \"max_tokens\": 0}\n", {"'max_tokens' is 0"});
  expect_has("{\"prompt\": 5}\n", {":1:", "'prompt' must be a string"});
  expect_has("{\"prompt\": \"\"}\n", {":1:", "'prompt' gives no token"});
  expect_has("{\"prompt\": \"hi\"}\n", {":1:", "'prompt' needs the model's tokenizer"}, false);
  expect_has("{\"prompt\": \"\\u00ff\\u00ff\"}\n", {":1:", "outside the model's vocabulary of 1000"}, true);
  expect_has(ok + "{\"prompt\": \"hi\", \"temperature\": -1}\n", {":2:", "'temperature' is -1"});
  expect_has(ok + "{\"prompt\": \"hi\", \"top_p\": 0}\n", {":2:", "'top_p' is 0", "(0, 1]"});
  expect_has(ok + "{\"prompt\": \"hi\", \"top_p\": 1.5}\n", {":2:", "'top_p' is 1.5"});
  expect_has(ok + "{\"prompt\": \"hi\", \"top_k\": -2}\n", {":2:", "'top_k' is -2"});
  expect_has(ok + "{\"prompt\": \"hi\", \"seed\": -3}\n", {":2:", "'seed' is -3"});
  expect_has(ok + "{\"prompt\": \"hi\", \"stop\": \"\"}\n", {":2:", "'stop' must be a non-empty string"});
  expect_has(ok + "{\"prompt\": \"hi\", \"stop\": [\"a\", 3]}\n", {":2:", "'stop' must be"});
  expect_has(ok + "{\"prompt\": \"hi\", \"ignore_eos\": 1}\n", {":2:", "'ignore_eos' must be true or false"});
  expect_has(ok + "{\"prompt\": \"hi\", \"images\": \"a.png\"}\n", {":2:", "'images' must be a list"});
  expect_has(ok + "{\"prompt\": \"hi\", \"audio\": 3}\n", {":2:", "'audio' must be the path"});
  expect_has(ok + "{\"prompt_token_ids\": [1, 2], \"max_tokens\": 3, \"temprature\": 1}\n", {":2:", "unknown field 'temprature'"});
  expect_has("\n  \n", {"no request in the file"});
}

TEST_F(RequestFileTest, MissingFileIsAUsageError) {
  try {
    read_request_file("/nonexistent/requests.jsonl", 10, TokenizeFn());
    FAIL();
  } catch (const RunError& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find("cannot open"), std::string::npos);
  }
}

TEST(RequestFinishTest, EndOfSequenceLengthAndStop) {
  Request q;
  q.max_tokens = 4;
  std::string reason;
  // The first end-of-sequence token ends it, and is kept (as transformers and vLLM keep it).
  EXPECT_EQ(finish_tokens({5, 2, 7, 2, 9}, q, {2}, reason), (std::vector<int64_t>{5, 2}));
  EXPECT_EQ(reason, "eos");
  // Past max_tokens nothing counts; an EOS at max_tokens + 1 is not reached.
  EXPECT_EQ(finish_tokens({5, 6, 7, 8, 2}, q, {2}, reason), (std::vector<int64_t>{5, 6, 7, 8}));
  EXPECT_EQ(reason, "length");
  // Any of several ids; ignore_eos goes on.
  EXPECT_EQ(finish_tokens({5, 3, 7}, q, {2, 3}, reason), (std::vector<int64_t>{5, 3}));
  q.ignore_eos = true;
  EXPECT_EQ(finish_tokens({5, 3, 7}, q, {2, 3}, reason), (std::vector<int64_t>{5, 3, 7}));
  EXPECT_EQ(reason, "length");
  // Stop strings: the text before the earliest of them.
  q.stop = {"lo", "He"};
  reason = "length";
  EXPECT_EQ(finish_text("Hello", q, reason), "");
  EXPECT_EQ(reason, "stop");
  q.stop = {"xyz", "l"};
  EXPECT_EQ(finish_text("Hello", q, reason), "He");
  q.stop = {"xyz"};
  reason = "eos";
  EXPECT_EQ(finish_text("Hello", q, reason), "Hello");
  EXPECT_EQ(reason, "eos");
}

TEST_F(RequestFileTest, EndOfSequenceIdsFromTheModelFolder) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("shardplan_eos_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  EXPECT_TRUE(read_eos_token_ids(dir.string()).empty());
  std::ofstream(dir / "config.json") << "{\"eos_token_id\": 7}";
  EXPECT_EQ(read_eos_token_ids(dir.string()), (std::vector<int64_t>{7}));
  std::ofstream(dir / "generation_config.json") << "{\"eos_token_id\": [2, 9]}";
  EXPECT_EQ(read_eos_token_ids(dir.string()), (std::vector<int64_t>{2, 9}));  // generation_config first
  // NOTE: not remove_all: the test links libtorch, whose copy of it (found first) crashes.
  for (const char* f : {"config.json", "generation_config.json"}) std::filesystem::remove(dir / f);
  std::filesystem::remove(dir);
}

}  // namespace
}  // namespace shardplan
