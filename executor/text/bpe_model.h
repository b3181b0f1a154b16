// tokenizer.json's "model" of type BPE: vocabulary, ranked merges, and how a word becomes ids
// (tokenizers' models/bpe: byte_fallback to "<0xNN>" tokens, unk_token with fuse_unk,
// ignore_merges, continuing_subword_prefix, end_of_word_suffix). A word cache (as tokenizers
// keeps one) remembers the ids of words seen before. Dropout other than null or 0 is refused,
// and so are the other model types (WordPiece, Unigram, WordLevel).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace shardplan {

class BpeModel {
 public:
  // NOTE: move-only: vocab_'s keys are views into tokens_' strings, which a move keeps in place.
  BpeModel(BpeModel&&) = default;
  BpeModel& operator=(BpeModel&&) = default;
  BpeModel(const BpeModel&) = delete;
  BpeModel& operator=(const BpeModel&) = delete;

  // From the "model" value; throws TokenizerError naming the field at fault.
  static BpeModel parse(const nlohmann::json& model, const std::string& path);

  // Appends the ids of `word` (one pre-tokenized piece) to `ids`.
  void tokenize(const std::string& word, std::vector<int64_t>& ids) const;

  std::optional<int64_t> token_to_id(std::string_view token) const;
  // The token of `id`, or nullptr when the vocabulary has none.
  const std::string* id_to_token(int64_t id) const;
  // The number of entries of the vocabulary.
  int64_t size() const { return static_cast<int64_t>(vocab_.size()); }

 private:
  BpeModel() = default;
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    int32_t len;
  };
  struct WordCache;

  int32_t char_id(std::string_view word, size_t start, size_t end, bool is_first, bool is_last) const;
  void merge_word(std::string_view word, std::vector<Symbol>& symbols) const;
  void merge_all(std::vector<Symbol>& symbols) const;
  const Merge* find_merge(int32_t left, int32_t right) const;

  std::vector<std::string> tokens_;                      // the vocabulary's strings (stable storage)
  std::unordered_map<std::string_view, int32_t> vocab_;  // views into tokens_
  std::unordered_map<int32_t, int32_t> id_to_index_;     // id -> index in tokens_
  std::unordered_map<uint64_t, Merge> merges_;           // (left id << 32 | right id) -> merge
  std::vector<int32_t> ascii_ids_;                       // id of each single-byte token, -1 if none
  std::unordered_map<char32_t, int32_t> char_ids_;       // id of each single-character token
  bool plain_chars_ = true;                              // no prefix / suffix: char_ids_ applies
  std::optional<std::string> unk_token_;
  std::optional<int32_t> unk_id_;
  std::optional<std::string> continuing_subword_prefix_;
  std::optional<std::string> end_of_word_suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  int32_t byte_ids_[256];  // "<0xNN>" ids for byte_fallback, -1 if none
  std::shared_ptr<WordCache> cache_;
};

}  // namespace shardplan
