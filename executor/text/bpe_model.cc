// The BPE model of tokenizer.json (see bpe_model.h), following tokenizers' models/bpe/model.rs
// and word.rs.
#include "executor/text/bpe_model.h"

#include <algorithm>
#include <cstdio>
#include <mutex>

#include "executor/text/json_fields.h"
#include "executor/text/tokenizer_error.h"
#include "executor/text/utf8.h"

namespace shardplan {

// The ids of words seen before. NOTE: as in tokenizers, at most 10,000 words of fewer than 256
// bytes; once full, nothing more is added (the ids never depend on the cache).
struct BpeModel::WordCache {
  static constexpr size_t kCapacity = 10000;
  static constexpr size_t kMaxWordBytes = 256;
  std::mutex mutex;
  std::unordered_map<std::string, std::vector<int32_t>> words;
};

namespace {

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

}  // namespace

BpeModel BpeModel::parse(const nlohmann::json& model, const std::string& path) {
  // Checks: type is BPE; dropout null or 0; vocab an object of non-negative ids; merges "a b"
  // strings or [a, b] pairs whose parts and concatenation are in the vocabulary; unk_token, when
  // given, is in the vocabulary only when it is needed (as tokenizers).
  const std::optional<std::string> type = json_optional_string(model, "type", path);
  if (type && *type != "BPE") {
    throw_unsupported(path + ".type", "the model '" + *type + "' (only BPE is implemented)");
  }
  if (!type && !model.contains("merges")) {
    throw_unsupported(path, "a model without \"type\" and without merges (only BPE is implemented)");
  }
  const auto dropout = model.find("dropout");
  if (dropout != model.end() && !dropout->is_null()) {
    if (!dropout->is_number()) throw_malformed(path + ".dropout", "expected a number or null");
    if (dropout->get<double>() != 0.0) {
      throw_unsupported(path + ".dropout", "BPE dropout " + dropout->dump() + " (random; only null or 0)");
    }
  }
  BpeModel bpe;
  bpe.unk_token_ = json_optional_string(model, "unk_token", path);
  bpe.continuing_subword_prefix_ = json_optional_string(model, "continuing_subword_prefix", path);
  bpe.end_of_word_suffix_ = json_optional_string(model, "end_of_word_suffix", path);
  bpe.fuse_unk_ = json_bool(model, "fuse_unk", path, false);
  bpe.byte_fallback_ = json_bool(model, "byte_fallback", path, false);
  bpe.ignore_merges_ = json_bool(model, "ignore_merges", path, false);
  bpe.plain_chars_ = !bpe.continuing_subword_prefix_ && !bpe.end_of_word_suffix_;

  const nlohmann::json& vocab = json_member(model, "vocab", path);
  if (!vocab.is_object()) throw_malformed(path + ".vocab", "expected an object of token -> id");
  bpe.tokens_.reserve(vocab.size());
  std::vector<int32_t> ids;
  ids.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!json_is_index(it.value()) || it.value().get<uint64_t>() > 0x7FFFFFFE) {
      throw_malformed(path + ".vocab[\"" + it.key() + "\"]",
                      "expected an id in [0, 2^31 - 1), got " + it.value().dump());
    }
    bpe.tokens_.push_back(it.key());
    ids.push_back(static_cast<int32_t>(it.value().get<uint64_t>()));
  }
  bpe.vocab_.reserve(bpe.tokens_.size());
  bpe.ascii_ids_.assign(128, -1);
  for (size_t i = 0; i < bpe.tokens_.size(); ++i) {
    const std::string& token = bpe.tokens_[i];
    bpe.vocab_[token] = ids[i];
    bpe.id_to_index_[ids[i]] = static_cast<int32_t>(i);
    size_t pos = 0;
    if (!token.empty()) {
      const char32_t c = next_code_point(token, pos);
      if (pos == token.size()) {
        if (c < 128) bpe.ascii_ids_[c] = ids[i];
        bpe.char_ids_[c] = ids[i];
      }
    }
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    const auto it = bpe.vocab_.find(name);
    bpe.byte_ids_[b] = it == bpe.vocab_.end() ? -1 : it->second;
  }
  if (bpe.unk_token_) {
    const auto it = bpe.vocab_.find(*bpe.unk_token_);
    if (it != bpe.vocab_.end()) bpe.unk_id_ = it->second;
  }

  const nlohmann::json& merges = json_member(model, "merges", path);
  if (!merges.is_array()) throw_malformed(path + ".merges", "expected an array");
  const size_t prefix_len = bpe.continuing_subword_prefix_ ? bpe.continuing_subword_prefix_->size() : 0;
  bpe.merges_.reserve(merges.size() * 2);
  std::string left, right, merged;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const nlohmann::json& m = merges[rank];
    const std::string where = path + ".merges[" + std::to_string(rank) + "]";
    if (m.is_string()) {
      // NOTE: the legacy "a b" form splits on every space and needs exactly two parts.
      const std::string& line = m.get_ref<const std::string&>();
      const size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
        throw_malformed(where, "expected \"left right\" (one space), got \"" + line + "\"");
      }
      left = line.substr(0, space);
      right = line.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      throw_malformed(where, "expected \"left right\" or [\"left\", \"right\"], got " + m.dump());
    }
    const auto l = bpe.vocab_.find(left);
    const auto r = bpe.vocab_.find(right);
    if (l == bpe.vocab_.end()) throw_malformed(where, "'" + left + "' is not in the vocabulary");
    if (r == bpe.vocab_.end()) throw_malformed(where, "'" + right + "' is not in the vocabulary");
    if (right.size() < prefix_len) throw_malformed(where, "'" + right + "' is shorter than continuing_subword_prefix");
    merged = left;
    merged.append(right, prefix_len, std::string::npos);
    const auto n = bpe.vocab_.find(merged);
    if (n == bpe.vocab_.end()) throw_malformed(where, "the merged token '" + merged + "' is not in the vocabulary");
    // NOTE: a pair listed twice keeps its last rank, as tokenizers' map of merges does.
    bpe.merges_[pair_key(l->second, r->second)] = Merge{static_cast<int32_t>(rank), n->second};
  }
  bpe.cache_ = std::make_shared<WordCache>();
  return bpe;
}

std::optional<int64_t> BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int64_t id) const {
  if (id < 0 || id > 0x7FFFFFFF) return nullptr;
  const auto it = id_to_index_.find(static_cast<int32_t>(id));
  return it == id_to_index_.end() ? nullptr : &tokens_[static_cast<size_t>(it->second)];
}

const BpeModel::Merge* BpeModel::find_merge(int32_t left, int32_t right) const {
  const auto it = merges_.find(pair_key(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

int32_t BpeModel::char_id(std::string_view word, size_t start, size_t end, bool is_first, bool is_last) const {
  if (plain_chars_) {
    if (end - start == 1) return ascii_ids_[static_cast<unsigned char>(word[start])];
    size_t pos = start;
    const auto it = char_ids_.find(next_code_point(word, pos));
    return it == char_ids_.end() ? -1 : it->second;
  }
  std::string s;
  if (!is_first && continuing_subword_prefix_) s += *continuing_subword_prefix_;
  s.append(word.substr(start, end - start));
  if (is_last && end_of_word_suffix_) s += *end_of_word_suffix_;
  const auto it = vocab_.find(s);
  return it == vocab_.end() ? -1 : it->second;
}

void BpeModel::merge_word(std::string_view word, std::vector<Symbol>& symbols) const {
  symbols.clear();
  const auto add = [&](int32_t id, size_t len) {
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back(Symbol{id, index - 1, index + 1, static_cast<int32_t>(len)});
  };
  // A pending unknown run: its id and byte length (fused while fuse_unk).
  int32_t unk_id = -1;
  size_t unk_len = 0;
  size_t pos = 0;
  while (pos < word.size()) {
    const size_t start = pos;
    pos += utf8_length(static_cast<unsigned char>(word[pos]));
    const bool is_first = start == 0;
    const bool is_last = pos == word.size();
    const int32_t id = char_id(word, start, pos, is_first, is_last);
    const size_t byte_len = pos - start;
    if (id >= 0) {
      if (unk_id >= 0) {
        add(unk_id, unk_len);
        unk_id = -1;
      }
      add(id, byte_len);
      continue;
    }
    if (byte_fallback_) {
      // The bytes of the character as the vocabulary would have spelled it (with the prefix
      // and suffix), each as "<0xNN>", when all of them exist.
      std::string s;
      if (!is_first && continuing_subword_prefix_) s += *continuing_subword_prefix_;
      s.append(word.substr(start, byte_len));
      if (is_last && end_of_word_suffix_) s += *end_of_word_suffix_;
      bool all = true;
      for (const char b : s) all = all && byte_ids_[static_cast<unsigned char>(b)] >= 0;
      if (all) {
        for (const char b : s) add(byte_ids_[static_cast<unsigned char>(b)], 1);
        continue;
      }
    }
    if (unk_token_) {
      if (!unk_id_) {
        throw TokenizerError(kTokenizerExitInvalid,
                             "tokenizer.json: the unk_token '" + *unk_token_ + "' is not in the vocabulary");
      }
      if (unk_id >= 0 && fuse_unk_) {
        unk_len += byte_len;
      } else {
        if (unk_id >= 0) add(unk_id, unk_len);
        unk_id = *unk_id_;
        unk_len = byte_len;
      }
    }
    // NOTE: without unk_token an unknown character gives no id at all, as in tokenizers.
  }
  if (unk_id >= 0) add(unk_id, unk_len);
  if (!symbols.empty()) symbols.back().next = -1;
  merge_all(symbols);
}

void BpeModel::merge_all(std::vector<Symbol>& symbols) const {
  // A min-heap on (rank, position), as tokenizers' word.rs: the best-ranked merge first, the
  // leftmost among equals.
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
  };
  const auto later = [](const Candidate& a, const Candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  thread_local std::vector<Candidate> heap;
  heap.clear();
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const Merge* m = find_merge(symbols[i].id, symbols[i + 1].id)) {
      heap.push_back(Candidate{m->rank, static_cast<int32_t>(i), m->new_id});
    }
  }
  std::make_heap(heap.begin(), heap.end(), later);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Candidate top = heap.back();
    heap.pop_back();
    Symbol& current = symbols[static_cast<size_t>(top.pos)];
    if (current.len == 0 || current.next == -1) continue;
    const auto next_pos = static_cast<size_t>(current.next);
    const Symbol right = symbols[next_pos];
    // An expired candidate: the pair at this position is no longer the one it merges.
    const Merge* still = find_merge(current.id, right.id);
    if (still == nullptr || still->new_id != top.new_id) continue;
    current.id = top.new_id;
    current.len += right.len;
    current.next = right.next;
    symbols[next_pos].len = 0;
    if (right.next >= 0 && static_cast<size_t>(right.next) < symbols.size()) {
      symbols[static_cast<size_t>(right.next)].prev = top.pos;
    }
    if (current.prev >= 0) {
      const Symbol& prev = symbols[static_cast<size_t>(current.prev)];
      if (const Merge* m = find_merge(prev.id, current.id)) {
        heap.push_back(Candidate{m->rank, current.prev, m->new_id});
        std::push_heap(heap.begin(), heap.end(), later);
      }
    }
    if (current.next >= 0 && static_cast<size_t>(current.next) < symbols.size()) {
      const Symbol& next = symbols[static_cast<size_t>(current.next)];
      if (const Merge* m = find_merge(current.id, next.id)) {
        heap.push_back(Candidate{m->rank, top.pos, m->new_id});
        std::push_heap(heap.begin(), heap.end(), later);
      }
    }
  }
}

void BpeModel::tokenize(const std::string& word, std::vector<int64_t>& ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    const auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() < WordCache::kMaxWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_->mutex);
    const auto it = cache_->words.find(word);
    if (it != cache_->words.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  thread_local std::vector<Symbol> symbols;
  merge_word(word, symbols);
  std::vector<int32_t> word_ids;
  word_ids.reserve(symbols.size());
  for (const Symbol& s : symbols) {
    if (s.len != 0) word_ids.push_back(s.id);
  }
  ids.insert(ids.end(), word_ids.begin(), word_ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_->mutex);
    if (cache_->words.size() < WordCache::kCapacity) cache_->words.emplace(word, std::move(word_ids));
  }
}

}  // namespace shardplan
