// `executor tokenize` (see tokenize_command.h).
#include "executor/cli/tokenize_command.h"

#include <iostream>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "executor/text/tokenizer.h"

namespace shardplan {
namespace {

std::string ids_json(const std::vector<int64_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ",";
    out += std::to_string(ids[i]);
  }
  return out + "]";
}

// A line of --decode: a JSON array of non-negative integer ids. Throws std::runtime_error.
std::vector<int64_t> parse_ids(const std::string& line) {
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("not JSON: ") + e.what());
  }
  if (!value.is_array())
    throw std::runtime_error("expected a JSON array of ids, got " + std::string(value.type_name()));
  std::vector<int64_t> ids;
  ids.reserve(value.size());
  for (const nlohmann::json& id : value) {
    if (!(id.is_number_unsigned() || (id.is_number_integer() && id.get<int64_t>() >= 0)) ||
        id.get<uint64_t>() > 0xFFFFFFFFull) {
      throw std::runtime_error("expected ids in [0, 2^32), got " + id.dump());
    }
    ids.push_back(static_cast<int64_t>(id.get<uint64_t>()));
  }
  return ids;
}

}  // namespace

void add_tokenize_command(CLI::App& app, TokenizeOptions& opts) {
  CLI::App* cmd = app.add_subcommand(
      "tokenize", "Encode stdin's lines to ids with a tokenizer.json (JSON arrays), or --decode ids to text");
  cmd->add_option("--tokenizer", opts.tokenizer, "Folder with tokenizer.json (or the file itself)")->required();
  cmd->add_flag("--decode", opts.decode, "Each line is a JSON array of ids; print its text");
  cmd->add_flag("--no-special-tokens", opts.no_special_tokens,
                "Encode without the special tokens of the post-processor (e.g. BOS)");
  cmd->add_flag("--skip-special-tokens", opts.skip_special_tokens, "Decode without the special tokens");
  cmd->add_flag("--json", opts.json,
                "Lines are JSON strings: the input of encode, the output of --decode (texts with newlines)");
}

int run_tokenize(const TokenizeOptions& opts, std::istream& in, std::ostream& out, std::ostream& err) {
  const auto fail = [&](int code, const std::string& message) {
    err << "executor: error: " << message << "\n";
    return code;
  };
  if (opts.decode && opts.no_special_tokens)
    return fail(kExitUsage, "--no-special-tokens applies to encoding, not --decode");
  if (!opts.decode && opts.skip_special_tokens)
    return fail(kExitUsage, "--skip-special-tokens applies to --decode only");
  std::optional<Tokenizer> tokenizer;
  try {
    tokenizer = Tokenizer::load(opts.tokenizer);
  } catch (const TokenizerError& e) {
    return fail(e.exit_code(), e.what());
  }
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    try {
      if (opts.decode) {
        const std::string text = tokenizer->decode(parse_ids(line), opts.skip_special_tokens);
        if (opts.json) {
          out << nlohmann::json(text).dump(-1, ' ', false) << "\n";
        } else {
          out << text << "\n";
        }
      } else {
        std::string text = line;
        if (opts.json) {
          nlohmann::json value;
          try {
            value = nlohmann::json::parse(line);
          } catch (const nlohmann::json::exception& e) {
            throw std::runtime_error(std::string("not JSON: ") + e.what());
          }
          if (!value.is_string()) {
            throw std::runtime_error("expected a JSON string, got " + std::string(value.type_name()));
          }
          text = value.get<std::string>();
        }
        out << ids_json(tokenizer->encode(text, !opts.no_special_tokens)) << "\n";
      }
      out.flush();
    } catch (const std::exception& e) {
      return fail(kExitInvalid, "line " + std::to_string(number) + ": " + e.what());
    }
  }
  if (in.bad()) return fail(kExitUsage, "reading the input failed");
  return 0;
}

int tokenize_command(const TokenizeOptions& opts) { return run_tokenize(opts, std::cin, std::cout, std::cerr); }

}  // namespace shardplan
