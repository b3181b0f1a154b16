// tokenizer.json's normalizers (see normalizer.h).
#include "executor/text/normalizer.h"

#include "executor/text/byte_level.h"
#include "executor/text/json_fields.h"
#include "executor/text/tokenizer_error.h"
#include "executor/text/utf8.h"

namespace shardplan {
namespace {

// BertNormalizer's "Chinese character": the CJK Unified Ideographs blocks, as tokenizers lists them.
bool is_chinese_char(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// Keeps the characters for which keep(c) holds; returns whether the first character went.
template <typename Keep>
bool filter_chars(std::string& text, Keep keep) {
  std::string out;
  out.reserve(text.size());
  bool first_removed = false;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t start = pos;
    const char32_t c = next_code_point(text, pos);
    if (keep(c)) {
      out.append(text, start, pos - start);
    } else if (start == 0) {
      first_removed = true;
    }
  }
  text = std::move(out);
  return first_removed;
}

bool strip(std::string& text, bool left, bool right) {
  size_t begin = 0, end = text.size();
  if (left) {
    while (begin < end) {
      size_t next = begin;
      if (!is_white_space(next_code_point(text, next))) break;
      begin = next;
    }
  }
  if (right) {
    while (end > begin) {
      const size_t prev = previous_code_point_start(text, end);
      size_t pos = prev;
      if (!is_white_space(next_code_point(text, pos))) break;
      end = prev;
    }
  }
  text = text.substr(begin, end - begin);
  return begin > 0;
}

bool bert_normalize(std::string& text, const NormalizerStep& step) {
  bool removed = false;
  if (step.clean_text) {
    removed = filter_chars(text, [](char32_t c) {
      const bool control = c != '\t' && c != '\n' && c != '\r' && is_other(c);
      return !(c == 0 || c == 0xFFFD || control);
    });
    std::string out;
    out.reserve(text.size());
    size_t pos = 0;
    while (pos < text.size()) {
      const size_t start = pos;
      const char32_t c = next_code_point(text, pos);
      if (is_white_space(c)) {
        out.push_back(' ');
      } else {
        out.append(text, start, pos - start);
      }
    }
    text = std::move(out);
  }
  if (step.handle_chinese_chars) {
    std::string out;
    out.reserve(text.size() + 8);
    size_t pos = 0;
    while (pos < text.size()) {
      const size_t start = pos;
      const char32_t c = next_code_point(text, pos);
      if (is_chinese_char(c)) out.push_back(' ');
      out.append(text, start, pos - start);
      if (is_chinese_char(c)) out.push_back(' ');
    }
    text = std::move(out);
  }
  if (step.strip_accents) {
    text = normalize_unicode(text, NormalForm::kNfd);
    removed = filter_chars(text, [](char32_t c) { return !is_nonspacing_mark(c); }) || removed;
  }
  if (step.lowercase) text = to_lowercase(text);
  return removed;
}

bool replace(std::string& text, const NormalizerStep& step) {
  thread_local std::vector<PatternSpan> spans;
  step.pattern->find_spans(text, spans);
  if (spans.size() == 1 && !spans[0].is_match) return false;
  std::string out;
  out.reserve(text.size());
  for (const PatternSpan& s : spans) {
    if (s.is_match) {
      out += step.text;
    } else {
      out.append(text, s.start, s.end - s.start);
    }
  }
  const bool removed =
      !spans.empty() && spans[0].is_match && spans[0].start == 0 && step.text.empty() && spans[0].end > 0;
  text = std::move(out);
  return removed;
}

}  // namespace

Normalizer Normalizer::parse(const nlohmann::json& value, const std::string& path) {
  Normalizer normalizer;
  if (!value.is_null()) normalizer.add(value, path);
  return normalizer;
}

void Normalizer::add(const nlohmann::json& value, const std::string& path) {
  const std::string type = json_type(value, path);
  NormalizerStep step;
  if (type == "Sequence") {
    const nlohmann::json& list = json_member(value, "normalizers", path);
    if (!list.is_array()) throw_malformed(path + ".normalizers", "expected an array");
    for (size_t i = 0; i < list.size(); ++i) add(list[i], path + ".normalizers[" + std::to_string(i) + "]");
    return;
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    step.kind = NormalizerStep::Kind::kUnicode;
    step.form = type == "NFC"    ? NormalForm::kNfc
                : type == "NFD"  ? NormalForm::kNfd
                : type == "NFKC" ? NormalForm::kNfkc
                                 : NormalForm::kNfkd;
  } else if (type == "Lowercase") {
    step.kind = NormalizerStep::Kind::kLowercase;
  } else if (type == "Strip") {
    step.kind = NormalizerStep::Kind::kStrip;
    step.strip_left = json_bool(value, "strip_left", path, false);
    step.strip_right = json_bool(value, "strip_right", path, false);
  } else if (type == "StripAccents") {
    step.kind = NormalizerStep::Kind::kStripAccents;
  } else if (type == "Prepend") {
    step.kind = NormalizerStep::Kind::kPrepend;
    step.text = json_string(value, "prepend", path);
  } else if (type == "Replace") {
    step.kind = NormalizerStep::Kind::kReplace;
    step.text = json_string(value, "content", path);
    step.pattern = std::make_shared<SplitPattern>([&] {
      const nlohmann::json& pattern = json_member(value, "pattern", path);
      const std::string where = path + ".pattern";
      if (pattern.is_object() && pattern.contains("String")) {
        return SplitPattern::literal(json_string(pattern, "String", where), where);
      }
      if (pattern.is_object() && pattern.contains("Regex")) {
        return SplitPattern::regex(json_string(pattern, "Regex", where), where);
      }
      throw_malformed(where, "expected {\"String\": ...} or {\"Regex\": ...}");
    }());
  } else if (type == "BertNormalizer") {
    step.kind = NormalizerStep::Kind::kBert;
    step.clean_text = json_bool(value, "clean_text", path, true);
    step.handle_chinese_chars = json_bool(value, "handle_chinese_chars", path, true);
    step.lowercase = json_bool(value, "lowercase", path, true);
    step.strip_accents = json_bool(value, "strip_accents", path, step.lowercase);
  } else if (type == "ByteLevel") {
    step.kind = NormalizerStep::Kind::kByteLevel;
  } else {
    throw_unsupported(path, "the normalizer '" + type +
                                "' (supported: Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, "
                                "Prepend, Replace, BertNormalizer, ByteLevel)");
  }
  steps_.push_back(std::move(step));
}

bool Normalizer::normalize(std::string& text) const {
  bool removed = false;
  for (const NormalizerStep& step : steps_) {
    if (text.empty()) break;
    switch (step.kind) {
      case NormalizerStep::Kind::kUnicode:
        text = normalize_unicode(text, step.form);
        break;
      case NormalizerStep::Kind::kLowercase:
        text = to_lowercase(text);
        break;
      case NormalizerStep::Kind::kStrip:
        removed = strip(text, step.strip_left, step.strip_right) || removed;
        break;
      case NormalizerStep::Kind::kStripAccents:
        removed = filter_chars(text, [](char32_t c) { return !is_mark(c); }) || removed;
        break;
      case NormalizerStep::Kind::kPrepend:
        text.insert(0, step.text);
        break;
      case NormalizerStep::Kind::kReplace:
        removed = replace(text, step) || removed;
        break;
      case NormalizerStep::Kind::kBert:
        removed = bert_normalize(text, step) || removed;
        break;
      case NormalizerStep::Kind::kByteLevel: {
        std::string out;
        out.reserve(text.size() * 2);
        append_byte_level(text, out);
        text = std::move(out);
        break;
      }
    }
  }
  return removed;
}

}  // namespace shardplan
