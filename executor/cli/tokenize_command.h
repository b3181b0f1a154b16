// `executor tokenize`: a tokenizer.json run over stdin, one line at a time, for scripts and tests.
//   encode (default): each line is a text (--json: a JSON string, so it may hold newlines) ->
//                     a JSON array of ids
//   --decode:         each line is a JSON array of ids -> the text (--json: a JSON string)
// Exit codes: 0 ok, 1 an input line that makes no sense (named by its number), 2 usage or I/O
// (the tokenizer cannot be read or is not supported).
#pragma once

#include <CLI/CLI.hpp>
#include <iosfwd>
#include <string>

namespace shardplan {

struct TokenizeOptions {
  std::string tokenizer;  // a folder with tokenizer.json, or the file
  bool decode = false;
  bool no_special_tokens = false;    // encode without the post-processor's special tokens
  bool skip_special_tokens = false;  // decode without the special tokens
  bool json = false;                 // lines are JSON strings (input of encode, output of decode)
};

void add_tokenize_command(CLI::App& app, TokenizeOptions& opts);

// Runs over stdin / stdout; prints its own errors ("executor: error: line 3: ...") on stderr and
// returns the exit code.
int tokenize_command(const TokenizeOptions& opts);

// The same over the given streams (for tests).
int run_tokenize(const TokenizeOptions& opts, std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace shardplan
