// Added tokens: ids and matching in the text (see added_vocabulary.h), following tokenizers'
// tokenizer/added_vocabulary.rs.
#include "executor/text/added_vocabulary.h"

#include <algorithm>

#include "executor/text/json_fields.h"
#include "executor/text/tokenizer_error.h"
#include "executor/text/unicode.h"
#include "executor/text/utf8.h"

namespace shardplan {

void AddedVocabulary::Trie::insert(const std::string& s, int64_t id) {
  int32_t node = 0;
  for (const char ch : s) {
    const auto b = static_cast<unsigned char>(ch);
    const auto it = nodes[static_cast<size_t>(node)].children.find(b);
    if (it != nodes[static_cast<size_t>(node)].children.end()) {
      node = it->second;
    } else {
      nodes.push_back(Node{});
      const auto added = static_cast<int32_t>(nodes.size() - 1);
      nodes[static_cast<size_t>(node)].children[b] = added;
      node = added;
    }
  }
  // NOTE: two tokens with the same content: the first one keeps the match.
  if (nodes[static_cast<size_t>(node)].token_id < 0) nodes[static_cast<size_t>(node)].token_id = id;
  first_byte[static_cast<unsigned char>(s[0])] = true;
}

AddedVocabulary AddedVocabulary::parse(const nlohmann::json& value, const std::string& path, const BpeModel& model,
                                       const Normalizer& normalizer) {
  // Checks: an array of objects with a non-empty string "content" and boolean flags.
  AddedVocabulary vocab;
  // NOTE: Rust's regex \w (Unicode Word), which single_word tests on the neighbouring characters.
  vocab.word_char_ = std::make_shared<Regex>(
      Regex::compile_pcre2(R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}])", "single_word"));
  if (value.is_null()) return vocab;
  if (!value.is_array()) throw_malformed(path, "expected an array");
  int64_t next_id = model.size();
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string where = path + "[" + std::to_string(i) + "]";
    const nlohmann::json& t = value[i];
    AddedToken token;
    token.content = json_string(t, "content", where);
    token.single_word = json_bool(t, "single_word", where, false);
    token.lstrip = json_bool(t, "lstrip", where, false);
    token.rstrip = json_bool(t, "rstrip", where, false);
    token.special = json_bool(t, "special", where, false);
    token.normalized = json_bool(t, "normalized", where, !token.special);
    if (token.content.empty()) continue;
    // The id tokenizers gives it: an added token's of the same content, else the model's, else
    // the next free one.
    int64_t id;
    if (const auto known = vocab.by_content_.find(token.content); known != vocab.by_content_.end()) {
      id = known->second;
    } else if (const std::optional<int64_t> in_model = model.token_to_id(token.content)) {
      id = *in_model;
    } else {
      id = next_id++;
    }
    if (token.normalized && !normalizer.empty()) {
      std::string normed = token.content;
      normalizer.normalize(normed);
      if (normed != token.content) {
        vocab.normalized_content_[id] = normed;
      } else {
        vocab.normalized_content_.erase(id);
      }
    }
    vocab.by_content_[token.content] = id;
    if (token.special) vocab.special_.insert(token.content);
    vocab.by_id_[id] = token;
  }
  // NOTE: tokenizers builds its matchers from the id map, so a later token with an id already
  // taken replaces the earlier one; insert in id order for a deterministic trie.
  std::vector<int64_t> ids;
  for (const auto& [id, token] : vocab.by_id_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (const int64_t id : ids) {
    const AddedToken& token = vocab.by_id_[id];
    if (token.normalized) {
      const auto n = vocab.normalized_content_.find(id);
      const std::string& pattern = n != vocab.normalized_content_.end() ? n->second : token.content;
      if (!pattern.empty()) vocab.normalized_trie_.insert(pattern, id);
    } else {
      vocab.raw_trie_.insert(token.content, id);
    }
  }
  return vocab;
}

void AddedVocabulary::split(TextPiece&& piece, const Trie& trie, std::vector<TextPiece>& out) const {
  const std::string& s = piece.text;
  size_t start_offset = 0;
  const auto emit_text = [&](size_t from, size_t to) {
    TextPiece sub;
    sub.text.assign(s, from, to - from);
    sub.at_input_start = piece.at_input_start && from == 0;
    out.push_back(std::move(sub));
  };
  size_t pos = 0;
  bool any = false;
  while (pos < s.size()) {
    if (!trie.first_byte[static_cast<unsigned char>(s[pos])]) {
      ++pos;
      continue;
    }
    // The longest token that starts at pos.
    int32_t node = 0;
    int64_t match_id = -1;
    size_t match_end = 0;
    for (size_t i = pos; i < s.size(); ++i) {
      const auto& children = trie.nodes[static_cast<size_t>(node)].children;
      const auto it = children.find(static_cast<unsigned char>(s[i]));
      if (it == children.end()) break;
      node = it->second;
      if (trie.nodes[static_cast<size_t>(node)].token_id >= 0) {
        match_id = trie.nodes[static_cast<size_t>(node)].token_id;
        match_end = i + 1;
      }
    }
    if (match_id < 0) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = match_end;
    // NOTE: a match refused for single_word is still consumed, as the Aho-Corasick iterator of
    // tokenizers moves past it.
    pos = match_end;
    const AddedToken& token = by_id_.at(match_id);
    if (token.single_word) {
      const bool word_before = start > 0 && word_char_->matches_at(s, previous_code_point_start(s, start));
      const bool word_after = stop < s.size() && word_char_->matches_at(s, stop);
      if (word_before || word_after) continue;
    }
    if (token.lstrip) {
      size_t new_start = start;
      while (new_start > 0) {
        const size_t prev = previous_code_point_start(s, new_start);
        size_t p = prev;
        if (!is_white_space(next_code_point(s, p))) break;
        new_start = prev;
      }
      start = std::max(new_start, start_offset);
    }
    if (token.rstrip) {
      while (stop < s.size()) {
        size_t p = stop;
        if (!is_white_space(next_code_point(s, p))) break;
        stop = p;
      }
      // NOTE: matching goes on from the end of the match itself, not of the stripped
      // whitespace, as in tokenizers.
    }
    if (start_offset < start) emit_text(start_offset, start);
    TextPiece matched;
    matched.text.assign(s, start, stop - start);
    matched.token_id = match_id;
    out.push_back(std::move(matched));
    start_offset = stop;
    any = true;
  }
  if (!any) {
    out.push_back(std::move(piece));
    return;
  }
  if (start_offset < s.size()) emit_text(start_offset, s.size());
}

void AddedVocabulary::split_raw(std::string_view text, std::vector<TextPiece>& out) const {
  out.clear();
  if (text.empty()) return;
  TextPiece whole;
  whole.text = std::string(text);
  whole.at_input_start = true;
  if (raw_trie_.empty()) {
    out.push_back(std::move(whole));
    return;
  }
  split(std::move(whole), raw_trie_, out);
}

void AddedVocabulary::split_normalized(std::vector<TextPiece>& pieces) const {
  std::vector<TextPiece> out;
  out.reserve(pieces.size());
  for (TextPiece& piece : pieces) {
    if (piece.token_id >= 0) {
      out.push_back(std::move(piece));
    } else if (!piece.text.empty()) {
      if (normalized_trie_.empty()) {
        out.push_back(std::move(piece));
      } else {
        split(std::move(piece), normalized_trie_, out);
      }
    }
  }
  pieces.swap(out);
}

std::optional<int64_t> AddedVocabulary::token_to_id(std::string_view content) const {
  const auto it = by_content_.find(std::string(content));
  if (it == by_content_.end()) return std::nullopt;
  return it->second;
}

const std::string* AddedVocabulary::id_to_token(int64_t id) const {
  const auto n = normalized_content_.find(id);
  if (n != normalized_content_.end()) return &n->second;
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second.content;
}

int64_t AddedVocabulary::count_outside(const BpeModel& model) const {
  int64_t n = 0;
  for (const auto& [content, id] : by_content_) n += model.token_to_id(content) ? 0 : 1;
  return n;
}

}  // namespace shardplan
