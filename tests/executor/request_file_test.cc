// --requests files: the token-id form is read as written; every malformed line, unknown or
// not-yet-supported key is an error naming the file, the line and the field.
#include "executor/runtime/request_file.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "executor/runtime/run_error.h"

namespace shardplan {
namespace {

class RequestFileTest : public ::testing::Test {
 protected:
  std::string write(const std::string& text) {
    path_ = (std::filesystem::temp_directory_path() /
             ("shardplan_requests_" + std::to_string(::getpid()) + ".jsonl")).string();
    std::ofstream(path_) << text;
    return path_;
  }
  void TearDown() override { std::filesystem::remove(path_); }
  // The message of the RunError reading `text` throws (vocabulary 1000).
  std::string error_of(const std::string& text) {
    try {
      read_request_file(write(text), 1000);
    } catch (const RunError& e) {
      EXPECT_EQ(e.exit_code(), 2);
      return e.what();
    }
    ADD_FAILURE() << "no error for: " << text;
    return "";
  }
  std::string path_;
};

TEST_F(RequestFileTest, ReadsTokenIdRequests) {
  const TokenRequests r = read_request_file(
      write("{\"prompt_token_ids\": [1, 2, 3], \"max_tokens\": 4}\n\n{\"max_tokens\": 4, \"prompt_token_ids\": [7, 8, 999]}\n"),
      1000);
  EXPECT_EQ(r.prompts, (std::vector<std::vector<int64_t>>{{1, 2, 3}, {7, 8, 999}}));
  EXPECT_EQ(r.max_tokens, 4);
}

TEST_F(RequestFileTest, EveryMistakeNamesTheLineAndTheField) {
  const std::string ok = "{\"prompt_token_ids\": [1, 2], \"max_tokens\": 3}\n";
  const auto expect_has = [&](const std::string& text, const std::vector<std::string>& parts) {
    const std::string message = error_of(text);
    for (const std::string& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message;
  };
  expect_has(ok + "{\"prompt_token_ids\": [1, 2], \"max_tokens\": 3\n", {":2:", "not valid JSON"});
  expect_has(ok + "[1, 2]\n", {":2:", "expected a JSON object"});
  expect_has("{\"max_tokens\": 3}\n", {":1:", "'prompt_token_ids' is missing"});
  expect_has("{\"prompt_token_ids\": [], \"max_tokens\": 3}\n", {":1:", "non-empty array"});
  expect_has("{\"prompt_token_ids\": [1, 1000], \"max_tokens\": 3}\n", {":1:", "'prompt_token_ids'[1] is 1000", "[0, 1000)"});
  expect_has("{\"prompt_token_ids\": [1, -1], \"max_tokens\": 3}\n", {"'prompt_token_ids'[1] is -1"});
  expect_has("{\"prompt_token_ids\": [1, 2.5], \"max_tokens\": 3}\n", {"'prompt_token_ids'[1] is 2.5"});
  expect_has("{\"prompt_token_ids\": [1]}\n", {"'max_tokens' is missing"});
  expect_has("{\"prompt_token_ids\": [1], \"max_tokens\": 0}\n", {"'max_tokens' is 0"});
  expect_has(ok + "{\"prompt_token_ids\": [1], \"max_tokens\": 3}\n", {":2:", "has 1 tokens, line 1 has 2"});
  expect_has(ok + "{\"prompt_token_ids\": [1, 2], \"max_tokens\": 5}\n", {":2:", "'max_tokens' is 5, line 1 has 3"});
  expect_has(ok + "{\"prompt\": \"hi\", \"max_tokens\": 3}\n", {":2:", "'prompt' is not supported by the executor yet"});
  expect_has(ok + "{\"prompt_token_ids\": [1, 2], \"max_tokens\": 3, \"temprature\": 1}\n", {":2:", "unknown field 'temprature'"});
  expect_has("\n  \n", {"no request in the file"});
}

TEST_F(RequestFileTest, MissingFileIsAUsageError) {
  try {
    read_request_file("/nonexistent/requests.jsonl", 10);
    FAIL();
  } catch (const RunError& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find("cannot open"), std::string::npos);
  }
}

}  // namespace
}  // namespace shardplan
