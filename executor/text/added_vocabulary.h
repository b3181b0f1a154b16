// tokenizer.json's "added_tokens": tokens matched in the text before the model sees it
// (tokenizers' AddedVocabulary). Tokens with normalized: false are found in the raw text, the
// others in each normalized piece; both by leftmost-longest match, honouring single_word (no
// word character on either side), lstrip (takes the whitespace before) and rstrip (the
// whitespace after). Special tokens are the ones decode(skip_special_tokens) drops.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "executor/text/bpe_model.h"
#include "executor/text/normalizer.h"
#include "executor/text/regex.h"
#include "executor/text/text_piece.h"

namespace shardplan {

struct AddedToken {
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

class AddedVocabulary {
 public:
  // From "added_tokens", with ids given as tokenizers gives them: a token the model's vocabulary
  // has keeps that id, the others get ids from the vocabulary's size on (the "id" fields are
  // only checked against that). Throws TokenizerError.
  static AddedVocabulary parse(const nlohmann::json& value, const std::string& path, const BpeModel& model,
                               const Normalizer& normalizer);

  // The raw input split at the tokens with normalized: false: each match its own piece with
  // its id; the text between them (and at_input_start on the piece at offset 0).
  void split_raw(std::string_view text, std::vector<TextPiece>& out) const;
  // Each piece without an id split at the tokens with normalized: true (in `pieces`, in place).
  void split_normalized(std::vector<TextPiece>& pieces) const;

  std::optional<int64_t> token_to_id(std::string_view content) const;
  // The text decode shows for `id` (its normalized form for a normalized token), or nullptr.
  const std::string* id_to_token(int64_t id) const;
  bool is_special(std::string_view token) const { return special_.count(std::string(token)) > 0; }
  // Added tokens the model's vocabulary lacks (tokenizers' get_vocab_size counts them).
  int64_t count_outside(const BpeModel& model) const;
  bool empty() const { return by_id_.empty(); }

 private:
  // Leftmost-longest matching of a set of strings: a byte trie.
  struct Trie {
    struct Node {
      int64_t token_id = -1;
      std::unordered_map<unsigned char, int32_t> children;
    };
    std::vector<Node> nodes{Node{}};
    bool first_byte[256] = {};
    void insert(const std::string& s, int64_t id);
    bool empty() const { return nodes.size() == 1; }
  };

  void split(TextPiece&& piece, const Trie& trie, std::vector<TextPiece>& out) const;

  std::unordered_map<std::string, int64_t> by_content_;
  std::unordered_map<int64_t, AddedToken> by_id_;
  std::unordered_map<int64_t, std::string> normalized_content_;  // when normalization changes it
  std::unordered_set<std::string> special_;
  Trie raw_trie_;
  Trie normalized_trie_;
  std::shared_ptr<Regex> word_char_;  // Rust regex's \w, for single_word
};

}  // namespace shardplan
