// The differential test's driver (tokenizer_reference.py): one tokenizer.json, JSON lines on
// stdin, one JSON object per line on stdout, so that every string costs one pass:
//   "text"      -> {"ids": encode(text), "plain": encode(text, false),
//                   "text": decode(ids), "skip": decode(ids, true)}
//   [ids...]    -> {"text": decode(ids), "skip": decode(ids, true)}
//   anything the tokenizer refuses -> {"error": "..."}
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "executor/text/tokenizer.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: tokenize_driver TOKENIZER_DIR_OR_JSON < lines.jsonl\n";
    return 2;
  }
  std::ios::sync_with_stdio(false);
  try {
    const shardplan::Tokenizer tokenizer = shardplan::Tokenizer::load(argv[1]);
    std::string line;
    while (std::getline(std::cin, line)) {
      nlohmann::json out;
      try {
        const nlohmann::json in = nlohmann::json::parse(line);
        std::vector<int64_t> ids;
        if (in.is_string()) {
          const std::string text = in.get<std::string>();
          ids = tokenizer.encode(text, true);
          out["ids"] = ids;
          out["plain"] = tokenizer.encode(text, false);
        } else {
          ids = in.get<std::vector<int64_t>>();
        }
        out["text"] = tokenizer.decode(ids, false);
        out["skip"] = tokenizer.decode(ids, true);
      } catch (const std::exception& e) {
        out = nlohmann::json{{"error", e.what()}};
      }
      std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    }
  } catch (const shardplan::Error& e) {
    std::cerr << "tokenize_driver: " << e.what() << "\n";
    return e.exit_code();
  }
  return 0;
}
