// Loading tokenizer.json and running encode / decode (see tokenizer.h); the order of the steps is
// tokenizers' TokenizerImpl::encode_single_sequence and decode.
#include "executor/text/tokenizer.h"

#include <sys/stat.h>

#include "base/input_file.h"
#include "executor/text/added_vocabulary.h"
#include "executor/text/bpe_model.h"
#include "executor/text/decoder.h"
#include "executor/text/json_fields.h"
#include "executor/text/normalizer.h"
#include "executor/text/post_processor.h"
#include "executor/text/pre_tokenizer.h"
#include "executor/text/utf8.h"

namespace shardplan {

struct Tokenizer::Parts {
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  BpeModel model;
  AddedVocabulary added;
  PostProcessor post_processor;
  Decoder decoder;
};

namespace {

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

nlohmann::json read_json(const std::string& path, int64_t max_bytes, const char* kind) {
  std::string error;
  const std::optional<std::string> text = read_input_file(path, max_bytes, kind, &error);
  if (!text) throw TokenizerError(kTokenizerExitUnsupported, path + ": " + error);
  try {
    return parse_json_limited(*text);
  } catch (const std::exception& e) {
    throw TokenizerError(kTokenizerExitInvalid, path + ": not valid JSON: " + e.what());
  }
}

// An eos_token_id value: an id or a list of ids. Throws naming `where`.
std::vector<int64_t> parse_eos_ids(const nlohmann::json& value, const std::string& where) {
  std::vector<int64_t> ids;
  const auto add = [&](const nlohmann::json& id) {
    if (!json_is_index(id)) {
      throw TokenizerError(kTokenizerExitInvalid,
                           where + ": eos_token_id: expected an id or a list of ids, got " + value.dump());
    }
    ids.push_back(static_cast<int64_t>(id.get<uint64_t>()));
  };
  if (value.is_array()) {
    for (const nlohmann::json& id : value) add(id);
  } else {
    add(value);
  }
  return ids;
}

}  // namespace

Tokenizer Tokenizer::load(const std::string& path) {
  const bool dir = is_directory(path);
  const std::string file = dir ? path + "/tokenizer.json" : path;
  const size_t slash = file.find_last_of('/');
  const std::string folder = slash == std::string::npos ? "." : file.substr(0, slash);
  const nlohmann::json j = read_json(file, kMaxTokenizerJsonBytes, "a tokenizer.json");
  if (!j.is_object()) throw TokenizerError(kTokenizerExitInvalid, file + ": expected a JSON object");

  Tokenizer tokenizer;
  try {
    if (j.contains("version") && j["version"] != "1.0") {
      throw_unsupported("version", "version " + j["version"].dump() + " (only \"1.0\")");
    }
    // NOTE: "truncation" and "padding" are ignored: they are options of batch encoding that
    // transformers turns off unless a call asks for them, and a prompt must not be cut.
    const auto get = [&](const char* key) -> const nlohmann::json& {
      static const nlohmann::json null_value;
      const auto it = j.find(key);
      return it == j.end() ? null_value : *it;
    };
    Normalizer normalizer = Normalizer::parse(get("normalizer"), "normalizer");
    PreTokenizer pre_tokenizer = PreTokenizer::parse(get("pre_tokenizer"), "pre_tokenizer");
    BpeModel model = BpeModel::parse(json_member(j, "model", ""), "model");
    AddedVocabulary added = AddedVocabulary::parse(get("added_tokens"), "added_tokens", model, normalizer);
    PostProcessor post_processor = PostProcessor::parse(get("post_processor"), "post_processor");
    Decoder decoder = Decoder::parse(get("decoder"), "decoder");
    tokenizer.parts_ =
        std::make_shared<const Parts>(Parts{std::move(normalizer), std::move(pre_tokenizer), std::move(model),
                                            std::move(added), std::move(post_processor), std::move(decoder)});
  } catch (const TokenizerError& e) {
    throw TokenizerError(e.exit_code(), file + ": " + e.what());
  }

  // The end-of-sequence ids: generation_config.json, config.json, then tokenizer_config.json.
  for (const char* name : {"generation_config.json", "config.json"}) {
    const std::string config = folder + "/" + name;
    if (!exists(config)) continue;
    const nlohmann::json c = read_json(config, kMaxConfigBytes, "a config.json");
    if (c.is_object() && c.contains("eos_token_id") && !c["eos_token_id"].is_null()) {
      tokenizer.eos_token_ids_ = parse_eos_ids(c["eos_token_id"], config);
      return tokenizer;
    }
  }
  const std::string tokenizer_config = folder + "/tokenizer_config.json";
  if (exists(tokenizer_config)) {
    const nlohmann::json c = read_json(tokenizer_config, kMaxConfigBytes, "a tokenizer_config.json");
    if (c.is_object() && c.contains("eos_token")) {
      const nlohmann::json& eos = c["eos_token"];
      std::optional<std::string> content;
      if (eos.is_string()) content = eos.get<std::string>();
      if (eos.is_object() && eos.contains("content") && eos["content"].is_string()) {
        content = eos["content"].get<std::string>();
      }
      if (content) {
        const std::optional<int64_t> id = tokenizer.token_to_id(*content);
        if (!id) {
          throw TokenizerError(kTokenizerExitInvalid,
                               tokenizer_config + ": eos_token '" + *content + "' is not in the vocabulary");
        }
        tokenizer.eos_token_ids_ = {*id};
      }
    }
  }
  return tokenizer;
}

std::vector<int64_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const size_t bad = find_invalid_utf8(text);
  if (bad != std::string_view::npos) {
    throw TokenizerError(kTokenizerExitInvalid, "the text is not valid UTF-8 (byte " + std::to_string(bad) + " of " +
                                                    std::to_string(text.size()) + ")");
  }
  const Parts& p = *parts_;
  std::vector<TextPiece> pieces;
  p.added.split_raw(text, pieces);
  if (!p.normalizer.empty()) {
    for (TextPiece& piece : pieces) {
      if (piece.token_id < 0 && p.normalizer.normalize(piece.text)) piece.at_input_start = false;
    }
  }
  p.added.split_normalized(pieces);
  p.pre_tokenizer.pre_tokenize(pieces);
  std::vector<int64_t> ids;
  ids.reserve(text.size() / 3 + 4);
  for (const TextPiece& piece : pieces) {
    if (piece.token_id >= 0) {
      ids.push_back(piece.token_id);
    } else {
      p.model.tokenize(piece.text, ids);
    }
  }
  return p.post_processor.process(std::move(ids), add_special_tokens);
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  const Parts& p = *parts_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int64_t id : ids) {
    if (id < 0 || id > 0xFFFFFFFFll) {
      throw TokenizerError(kTokenizerExitInvalid,
                           "cannot decode the id " + std::to_string(id) + " (ids are in [0, 2^32))");
    }
    const std::string* token = p.added.id_to_token(id);
    if (token == nullptr) token = p.model.id_to_token(id);
    if (token == nullptr) continue;
    if (skip_special_tokens && p.added.is_special(*token)) continue;
    tokens.push_back(*token);
  }
  return p.decoder.decode(std::move(tokens));
}

const std::vector<int64_t>& Tokenizer::eos_token_ids() const { return eos_token_ids_; }

std::optional<int64_t> Tokenizer::token_to_id(std::string_view token) const {
  if (const std::optional<int64_t> id = parts_->added.token_to_id(token)) return id;
  return parts_->model.token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int64_t id) const {
  const std::string* token = parts_->added.id_to_token(id);
  if (token == nullptr) token = parts_->model.id_to_token(id);
  if (token == nullptr) return std::nullopt;
  return *token;
}

int64_t Tokenizer::vocab_size() const { return parts_->model.size() + parts_->added.count_outside(parts_->model); }

}  // namespace shardplan
