// `executor run --requests FILE.jsonl`: requests given as token ids, one JSON object a line
// (docs/executor-run.md). This first form takes `prompt_token_ids` and `max_tokens`; every request
// has the same prompt length and max_tokens (one batch, greedy, no end-of-sequence stop). Text
// prompts, images, audio, sampling and stopping are refused by name, not ignored. No libtorch here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shardplan {

struct TokenRequests {
  std::vector<std::vector<int64_t>> prompts;  // [requests][prompt tokens]
  int64_t max_tokens = 0;                     // new tokens of every request
};

// Reads and checks the file. Checks: every non-blank line is a JSON object with a non-empty array
// `prompt_token_ids` of integers in [0, vocab) and an integer `max_tokens` >= 1; no other key; the
// same prompt length and max_tokens on every line; at least one request. Throws RunError (kUsage,
// exit 2) naming the file, the line and the field.
TokenRequests read_request_file(const std::string& path, int64_t vocab);

}  // namespace shardplan
