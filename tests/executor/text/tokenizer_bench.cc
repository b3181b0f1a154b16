// Encode throughput of executor/text on one thread (bench/tokenizer.sh compares it with
// `tokenizers`): every string of a corpus (JSON lines of strings) encoded once cold (empty word
// cache) and then `repeats` times; prints one JSON object with the cold pass and the best pass.
//   tokenizer_bench TOKENIZER CORPUS.jsonl [REPEATS]
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "executor/text/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: tokenizer_bench TOKENIZER CORPUS.jsonl [REPEATS]\n";
    return 2;
  }
  const int repeats = argc > 3 ? std::stoi(argv[3]) : 5;
  try {
    const auto load_start = std::chrono::steady_clock::now();
    const shardplan::Tokenizer tokenizer = shardplan::Tokenizer::load(argv[1]);
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
    std::ifstream in(argv[2]);
    std::vector<std::string> corpus;
    int64_t bytes = 0;
    for (std::string line; std::getline(in, line);) {
      corpus.push_back(nlohmann::json::parse(line).get<std::string>());
      bytes += static_cast<int64_t>(corpus.back().size());
    }
    int64_t tokens = 0;
    const auto pass = [&] {
      tokens = 0;
      const auto start = std::chrono::steady_clock::now();
      for (const std::string& text : corpus) tokens += static_cast<int64_t>(tokenizer.encode(text, true).size());
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    const double cold = pass();
    double best = cold;
    for (int r = 0; r < repeats; ++r) best = std::min(best, pass());
    const nlohmann::json out = {{"strings", corpus.size()},
                                {"bytes", bytes},
                                {"tokens", tokens},
                                {"load_s", load_s},
                                {"cold_s", cold},
                                {"best_s", best},
                                {"tokens_per_s", tokens / best},
                                {"mb_per_s", bytes / best / 1e6},
                                {"cold_tokens_per_s", tokens / cold}};
    std::cout << out.dump() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "tokenizer_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
