// tokenizer.json's pre-tokenizers (see pre_tokenizer.h).
#include "executor/text/pre_tokenizer.h"

#include "executor/text/byte_level.h"
#include "executor/text/json_fields.h"
#include "executor/text/tokenizer_error.h"
#include "executor/text/unicode.h"
#include "executor/text/utf8.h"

namespace shardplan {

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

// NOTE: the Whitespace pre-tokenizer's `\w+|[^\w\s]+` runs on Rust's regex crate, whose \w is
// Unicode's Word (Alphabetic, marks, decimal digits, connector punctuation, Join_Control), not
// Oniguruma's; it is written here in PCRE2's own syntax.
const char* const kWhitespacePattern =
    R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]+|[^\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}\p{White_Space}]+)";

// Spans of the characters for which `is_delimiter` holds, each its own match (tokenizers'
// Pattern for Fn(char) -> bool).
template <typename Pred>
void char_spans(std::string_view text, Pred is_delimiter, std::vector<PatternSpan>& out) {
  out.clear();
  if (text.empty()) {
    out.push_back({0, 0, false});
    return;
  }
  size_t last = 0, pos = 0;
  while (pos < text.size()) {
    const size_t start = pos;
    const char32_t c = next_code_point(text, pos);
    if (is_delimiter(c)) {
      if (last < start) out.push_back({last, start, false});
      out.push_back({start, pos, true});
      last = pos;
    }
  }
  if (last < text.size()) out.push_back({last, text.size(), false});
}

SplitPattern parse_pattern(const nlohmann::json& value, const std::string& path) {
  const nlohmann::json& pattern = json_member(value, "pattern", path);
  const std::string where = path + ".pattern";
  if (pattern.is_object() && pattern.contains("String")) {
    return SplitPattern::literal(json_string(pattern, "String", where), where);
  }
  if (pattern.is_object() && pattern.contains("Regex")) {
    return SplitPattern::regex(json_string(pattern, "Regex", where), where);
  }
  throw_malformed(where, "expected {\"String\": ...} or {\"Regex\": ...}");
}

std::shared_ptr<SplitPattern> gpt2_pattern() {
  static const auto pattern = std::make_shared<SplitPattern>(SplitPattern::regex(kGpt2Pattern, "ByteLevel"));
  return pattern;
}

}  // namespace

PreTokenizer PreTokenizer::parse(const nlohmann::json& value, const std::string& path) {
  PreTokenizer pre_tokenizer;
  if (!value.is_null()) pre_tokenizer.add(value, path);
  return pre_tokenizer;
}

void PreTokenizer::add(const nlohmann::json& value, const std::string& path) {
  const std::string type = json_type(value, path);
  PreTokenizerStep step;
  if (type == "Sequence") {
    const nlohmann::json& list = json_member(value, "pretokenizers", path);
    if (!list.is_array()) throw_malformed(path + ".pretokenizers", "expected an array");
    for (size_t i = 0; i < list.size(); ++i) add(list[i], path + ".pretokenizers[" + std::to_string(i) + "]");
    return;
  } else if (type == "ByteLevel") {
    step.kind = PreTokenizerStep::Kind::kByteLevel;
    step.add_prefix_space = json_bool(value, "add_prefix_space", path, true);
    step.use_regex = json_bool(value, "use_regex", path, true);
    if (step.use_regex) step.pattern = gpt2_pattern();
  } else if (type == "Split") {
    step.kind = PreTokenizerStep::Kind::kSplit;
    step.pattern = std::make_shared<SplitPattern>(parse_pattern(value, path));
    step.behavior = parse_split_behavior(json_string(value, "behavior", path), path + ".behavior");
    step.invert = json_bool(value, "invert", path, false);
  } else if (type == "Metaspace") {
    step.kind = PreTokenizerStep::Kind::kMetaspace;
    append_utf8(step.replacement, json_char(value, "replacement", path));
    const std::optional<std::string> scheme = json_optional_string(value, "prepend_scheme", path);
    if (!scheme || *scheme == "always") {
      step.prepend = PreTokenizerStep::Prepend::kAlways;
    } else if (*scheme == "first") {
      step.prepend = PreTokenizerStep::Prepend::kFirst;
    } else if (*scheme == "never") {
      step.prepend = PreTokenizerStep::Prepend::kNever;
    } else {
      throw_malformed(path + ".prepend_scheme", "unknown scheme '" + *scheme + "' (known: always, first, never)");
    }
    // The legacy field: add_prefix_space false means "never" and contradicts any other scheme.
    if (value.contains("add_prefix_space") && value["add_prefix_space"].is_boolean() &&
        !value["add_prefix_space"].get<bool>()) {
      if (scheme && *scheme != "never")
        throw_malformed(path, "add_prefix_space does not match declared prepend_scheme");
      step.prepend = PreTokenizerStep::Prepend::kNever;
    }
    step.split = json_bool(value, "split", path, true);
  } else if (type == "Digits") {
    step.kind = PreTokenizerStep::Kind::kDigits;
    step.individual_digits = json_bool(value, "individual_digits", path, false);
  } else if (type == "Punctuation") {
    step.kind = PreTokenizerStep::Kind::kPunctuation;
    step.behavior = value.contains("behavior")
                        ? parse_split_behavior(json_string(value, "behavior", path), path + ".behavior")
                        : SplitBehavior::kIsolated;
  } else if (type == "Whitespace") {
    step.kind = PreTokenizerStep::Kind::kWhitespace;
  } else if (type == "WhitespaceSplit") {
    step.kind = PreTokenizerStep::Kind::kWhitespaceSplit;
  } else {
    throw_unsupported(path, "the pre-tokenizer '" + type +
                                "' (supported: Sequence, ByteLevel, Split, Metaspace, Digits, Punctuation, "
                                "Whitespace, WhitespaceSplit)");
  }
  steps_.push_back(std::move(step));
}

void PreTokenizer::apply(const PreTokenizerStep& step, TextPiece&& piece, std::vector<TextPiece>& out) const {
  thread_local std::vector<PatternSpan> spans;
  switch (step.kind) {
    case PreTokenizerStep::Kind::kByteLevel: {
      if (step.add_prefix_space && !piece.text.empty() && piece.text[0] != ' ') piece.text.insert(0, " ");
      const size_t first = out.size();
      if (step.use_regex) {
        step.pattern->find_spans(piece.text, spans);
        split_piece(std::move(piece), spans, SplitBehavior::kIsolated, out);
      } else if (!piece.text.empty()) {
        out.push_back(std::move(piece));
      }
      std::string mapped;
      for (size_t i = first; i < out.size(); ++i) {
        mapped.clear();
        append_byte_level(out[i].text, mapped);
        out[i].text.swap(mapped);
      }
      return;
    }
    case PreTokenizerStep::Kind::kSplit:
      step.pattern->find_spans(piece.text, spans);
      if (step.invert) {
        for (PatternSpan& s : spans) s.is_match = !s.is_match;
      }
      split_piece(std::move(piece), spans, step.behavior, out);
      return;
    case PreTokenizerStep::Kind::kMetaspace: {
      std::string replaced;
      replaced.reserve(piece.text.size() + 8);
      for (const char ch : piece.text) {
        if (ch == ' ') {
          replaced += step.replacement;
        } else {
          replaced.push_back(ch);
        }
      }
      const bool starts_with_replacement = replaced.compare(0, step.replacement.size(), step.replacement) == 0;
      const bool prepend = !replaced.empty() && !starts_with_replacement &&
                           (step.prepend == PreTokenizerStep::Prepend::kAlways ||
                            (step.prepend == PreTokenizerStep::Prepend::kFirst && piece.at_input_start));
      if (prepend) replaced.insert(0, step.replacement);
      piece.text.swap(replaced);
      if (!step.split) {
        if (!piece.text.empty()) out.push_back(std::move(piece));
        return;
      }
      spans.clear();
      size_t last = 0, from = 0;
      while (true) {
        const size_t s = piece.text.find(step.replacement, from);
        if (s == std::string::npos) break;
        if (last < s) spans.push_back({last, s, false});
        spans.push_back({s, s + step.replacement.size(), true});
        last = from = s + step.replacement.size();
      }
      if (last < piece.text.size() || piece.text.empty()) spans.push_back({last, piece.text.size(), false});
      split_piece(std::move(piece), spans, SplitBehavior::kMergedWithNext, out);
      return;
    }
    case PreTokenizerStep::Kind::kDigits:
      char_spans(piece.text, is_numeric, spans);
      split_piece(std::move(piece), spans,
                  step.individual_digits ? SplitBehavior::kIsolated : SplitBehavior::kContiguous, out);
      return;
    case PreTokenizerStep::Kind::kPunctuation:
      char_spans(piece.text, is_punctuation, spans);
      split_piece(std::move(piece), spans, step.behavior, out);
      return;
    case PreTokenizerStep::Kind::kWhitespace: {
      static const Regex regex = Regex::compile_pcre2(kWhitespacePattern, "Whitespace");
      thread_local std::vector<std::pair<size_t, size_t>> matches;
      matches.clear();
      regex.find_matches(piece.text, matches);
      // Invert(regex) with Removed: the words are kept, the rest dropped.
      spans.clear();
      size_t prev = 0;
      for (const auto& [s, e] : matches) {
        if (prev != s) spans.push_back({prev, s, true});
        spans.push_back({s, e, false});
        prev = e;
      }
      if (prev != piece.text.size() || piece.text.empty()) spans.push_back({prev, piece.text.size(), true});
      split_piece(std::move(piece), spans, SplitBehavior::kRemoved, out);
      return;
    }
    case PreTokenizerStep::Kind::kWhitespaceSplit:
      char_spans(piece.text, is_white_space, spans);
      split_piece(std::move(piece), spans, SplitBehavior::kRemoved, out);
      return;
  }
}

void PreTokenizer::pre_tokenize(std::vector<TextPiece>& pieces) const {
  std::vector<TextPiece> next;
  for (const PreTokenizerStep& step : steps_) {
    next.clear();
    next.reserve(pieces.size() * 4);
    for (TextPiece& piece : pieces) {
      if (piece.token_id >= 0) {
        next.push_back(std::move(piece));
      } else {
        apply(step, std::move(piece), next);
      }
    }
    pieces.swap(next);
  }
}

}  // namespace shardplan
