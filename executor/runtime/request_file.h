// `executor run --requests FILE.jsonl`: one request a JSON object a line (docs/executor-run.md):
//   {"prompt": "text as the model sees it" | "prompt_token_ids": [ids],
//    "max_tokens": 16, "temperature": 0, "top_p": 1, "top_k": 0, "seed": 0,
//    "stop": "text" | ["text", ...], "ignore_eos": false,
//    "images": ["photo.jpg", ...] (llava: one image token in the prompt for each),
//    "audio": "speech.wav" (whisper)}
// Prompts may differ in length (a ragged batch) and so may max_tokens. Media paths are relative to
// the requests file's folder. No libtorch here.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace shardplan {

struct SamplingParams {
  double temperature = 0;  // 0: greedy (the argmax; the first of equal maxima)
  int64_t top_k = 0;       // 0 (or -1): every token
  double top_p = 1;        // the smallest set of most likely tokens whose probability reaches top_p
  uint64_t seed = 0;
};

// Where a request's generation ends, as the engine tracks it step by step (the text is cut at
// the stop string afterwards).
struct RequestEnd {
  int64_t max_tokens = 0;
  bool ignore_eos = false;
  // Whether the tokens generated so far reach one of the request's stop strings (null: it has none).
  std::function<bool(const std::vector<int64_t>&)> stopped;
};

struct Request {
  std::vector<int64_t> prompt_ids;  // the prompt's tokens (a text prompt: as the tokenizer gives them)
  bool text_prompt = false;         // given as `prompt` text
  int64_t max_tokens = 16;          // new tokens at most (vLLM's default)
  SamplingParams sampling;
  std::vector<std::string> stop;    // generation ends before the first of these in the text
  bool ignore_eos = false;          // go on past the end-of-sequence tokens
  std::vector<std::string> images;  // image files (paths made relative to the requests file's folder)
  std::string audio;                // an audio file (likewise); empty: none
};

// text -> token ids (the model's tokenizer, with its special tokens); empty: text prompts are
// refused.
using TokenizeFn = std::function<std::vector<int64_t>(const std::string&)>;

// Reads and checks the file. Checks, per non-blank line: a JSON object; exactly one of `prompt`
// (a string; needs `tokenize`) and `prompt_token_ids` (a non-empty array of ids in [0, vocab));
// the prompt has at least one token; `max_tokens` an integer >= 1; `temperature` a number >= 0;
// `top_p` in (0, 1]; `top_k` an integer >= -1; `seed` an integer >= 0; `stop` a non-empty string
// or a list of them; `ignore_eos` a boolean; `images` a list of strings; `audio` a string; no
// other key. At least one request. (Whether the model takes images or audio is run_command's check.) Throws RunError (kUsage, exit 2) naming the file, the line and the field.
std::vector<Request> read_request_file(const std::string& path, int64_t vocab, const TokenizeFn& tokenize);

// The end-of-sequence ids of a model folder: generation_config.json's eos_token_id (an id or a
// list), else config.json's; empty when neither says (or the folder has neither file).
std::vector<int64_t> read_eos_token_ids(const std::string& model_dir);

// Where a request's generation ends: the first end-of-sequence token (kept, as transformers and
// vLLM keep it; not with ignore_eos) or max_tokens. Returns the tokens kept and sets `reason` to
// "eos" or "length". Stop strings are applied to the text afterwards (finish_text).
std::vector<int64_t> finish_tokens(const std::vector<int64_t>& generated, const Request& request,
                                   const std::vector<int64_t>& eos_ids, std::string& reason);

// With the request's stop strings: the text up to the earliest occurrence of any (excluded, as
// vLLM does by default) and reason "stop"; else `text` unchanged.
std::string finish_text(const std::string& text, const Request& request, std::string& reason);

}  // namespace shardplan
