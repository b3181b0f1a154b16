// Decoders (see decoder.h), following tokenizers' decoders/*.rs.
#include "executor/text/decoder.h"

#include "executor/text/byte_level.h"
#include "executor/text/json_fields.h"
#include "executor/text/tokenizer_error.h"
#include "executor/text/utf8.h"

namespace shardplan {
namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
}

// WordPiece's cleanup of tokenization spaces before punctuation and contractions.
void cleanup_spaces(std::string& s) {
  replace_all(s, " .", ".");
  replace_all(s, " ?", "?");
  replace_all(s, " !", "!");
  replace_all(s, " ,", ",");
  replace_all(s, " ' ", "'");
  replace_all(s, " n't", "n't");
  replace_all(s, " 'm", "'m");
  replace_all(s, " do not", " don't");
  replace_all(s, " 's", "'s");
  replace_all(s, " 've", "'ve");
  replace_all(s, " 're", "'re");
}

std::vector<char32_t> code_points(const std::string& s) {
  std::vector<char32_t> out;
  size_t pos = 0;
  while (pos < s.size()) out.push_back(next_code_point(s, pos));
  return out;
}

// "<0xNN>" as a byte, or -1.
int byte_token(const std::string& token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
  int value = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = token[i];
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else {
      return -1;
    }
    value = value * 16 + digit;
  }
  return value;
}

void apply(const DecoderStep& step, std::vector<std::string>& tokens) {
  switch (step.kind) {
    case DecoderStep::Kind::kByteLevel: {
      // Every token's characters back to bytes (a token with a character outside the byte-level
      // alphabet keeps its UTF-8 bytes), then all of it as one text, invalid UTF-8 as U+FFFD.
      std::string bytes;
      for (const std::string& token : tokens) {
        const size_t mark = bytes.size();
        size_t pos = 0;
        bool all = true;
        while (pos < token.size()) {
          const int b = byte_level_byte(next_code_point(token, pos));
          if (b < 0) {
            all = false;
            break;
          }
          bytes.push_back(static_cast<char>(b));
        }
        if (!all) {
          bytes.resize(mark);
          bytes += token;
        }
      }
      tokens.assign(1, utf8_lossy(bytes));
      return;
    }
    case DecoderStep::Kind::kMetaspace:
      for (size_t i = 0; i < tokens.size(); ++i) {
        std::string out;
        size_t pos = 0;
        while (pos < tokens[i].size()) {
          const size_t start = pos;
          const char32_t c = next_code_point(tokens[i], pos);
          if (c == step.replacement) {
            // NOTE: in the first token every replacement character goes (not only a leading one).
            if (!(i == 0 && step.prepend)) out.push_back(' ');
          } else {
            out.append(tokens[i], start, pos - start);
          }
        }
        tokens[i] = std::move(out);
      }
      return;
    case DecoderStep::Kind::kReplace: {
      thread_local std::vector<PatternSpan> spans;
      for (std::string& token : tokens) {
        step.pattern->find_spans(token, spans);
        std::string out;
        for (const PatternSpan& s : spans) {
          if (s.is_match) {
            out += step.text;
          } else {
            out.append(token, s.start, s.end - s.start);
          }
        }
        token = std::move(out);
      }
      return;
    }
    case DecoderStep::Kind::kByteFallback: {
      std::vector<std::string> out;
      std::string pending;
      const auto flush = [&] {
        if (pending.empty()) return;
        if (find_invalid_utf8(pending) == std::string::npos) {
          out.push_back(pending);
        } else {
          for (size_t i = 0; i < pending.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
        }
        pending.clear();
      };
      for (std::string& token : tokens) {
        const int b = byte_token(token);
        if (b >= 0) {
          pending.push_back(static_cast<char>(b));
        } else {
          flush();
          out.push_back(std::move(token));
        }
      }
      flush();
      tokens.swap(out);
      return;
    }
    case DecoderStep::Kind::kFuse: {
      std::string all;
      for (const std::string& token : tokens) all += token;
      tokens.assign(1, all);
      return;
    }
    case DecoderStep::Kind::kStrip:
      for (std::string& token : tokens) {
        const std::vector<char32_t> chars = code_points(token);
        size_t start_cut = 0;
        for (size_t i = 0; i < chars.size() && i < step.start; ++i) {
          if (chars[i] != step.content) break;
          start_cut = i + 1;
        }
        size_t stop_cut = chars.size();
        for (size_t i = 0; i < step.stop && i < chars.size(); ++i) {
          const size_t index = chars.size() - i - 1;
          if (chars[index] != step.content || index < start_cut) break;
          stop_cut = index;
        }
        std::string out;
        for (size_t i = start_cut; i < stop_cut; ++i) append_utf8(out, chars[i]);
        token = std::move(out);
      }
      return;
    case DecoderStep::Kind::kWordPiece:
      for (size_t i = 0; i < tokens.size(); ++i) {
        std::string& token = tokens[i];
        if (i != 0) {
          if (token.compare(0, step.text.size(), step.text) == 0) {
            token.erase(0, step.text.size());
          } else {
            token.insert(0, " ");
          }
        }
        if (step.cleanup) cleanup_spaces(token);
      }
      return;
    case DecoderStep::Kind::kBpe:
      for (size_t i = 0; i < tokens.size(); ++i) {
        replace_all(tokens[i], step.text, i + 1 == tokens.size() ? "" : " ");
      }
      return;
  }
}

}  // namespace

Decoder Decoder::parse(const nlohmann::json& value, const std::string& path) {
  Decoder decoder;
  if (!value.is_null()) {
    decoder.none_ = false;
    decoder.add(value, path);
  }
  return decoder;
}

void Decoder::add(const nlohmann::json& value, const std::string& path) {
  const std::string type = json_type(value, path);
  DecoderStep step;
  if (type == "Sequence") {
    const nlohmann::json& list = json_member(value, "decoders", path);
    if (!list.is_array()) throw_malformed(path + ".decoders", "expected an array");
    for (size_t i = 0; i < list.size(); ++i) add(list[i], path + ".decoders[" + std::to_string(i) + "]");
    return;
  } else if (type == "ByteLevel") {
    step.kind = DecoderStep::Kind::kByteLevel;
  } else if (type == "Metaspace") {
    step.kind = DecoderStep::Kind::kMetaspace;
    step.replacement = json_char(value, "replacement", path);
    const std::optional<std::string> scheme = json_optional_string(value, "prepend_scheme", path);
    step.prepend = !(scheme && *scheme == "never");
    if (value.contains("add_prefix_space") && value["add_prefix_space"].is_boolean() &&
        !value["add_prefix_space"].get<bool>()) {
      step.prepend = false;
    }
  } else if (type == "Replace") {
    step.kind = DecoderStep::Kind::kReplace;
    step.text = json_string(value, "content", path);
    const nlohmann::json& pattern = json_member(value, "pattern", path);
    const std::string where = path + ".pattern";
    if (pattern.is_object() && pattern.contains("String")) {
      step.pattern =
          std::make_shared<SplitPattern>(SplitPattern::literal(json_string(pattern, "String", where), where));
    } else if (pattern.is_object() && pattern.contains("Regex")) {
      step.pattern = std::make_shared<SplitPattern>(SplitPattern::regex(json_string(pattern, "Regex", where), where));
    } else {
      throw_malformed(where, "expected {\"String\": ...} or {\"Regex\": ...}");
    }
  } else if (type == "ByteFallback") {
    step.kind = DecoderStep::Kind::kByteFallback;
  } else if (type == "Fuse") {
    step.kind = DecoderStep::Kind::kFuse;
  } else if (type == "Strip") {
    step.kind = DecoderStep::Kind::kStrip;
    step.content = json_char(value, "content", path);
    step.start = static_cast<size_t>(json_uint(value, "start", path, 0));
    step.stop = static_cast<size_t>(json_uint(value, "stop", path, 0));
  } else if (type == "WordPiece") {
    step.kind = DecoderStep::Kind::kWordPiece;
    step.text = json_optional_string(value, "prefix", path).value_or("##");
    step.cleanup = json_bool(value, "cleanup", path, true);
  } else if (type == "BPEDecoder") {
    step.kind = DecoderStep::Kind::kBpe;
    step.text = json_optional_string(value, "suffix", path).value_or("</w>");
  } else {
    throw_unsupported(path, "the decoder '" + type +
                                "' (supported: Sequence, ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, "
                                "WordPiece, BPEDecoder)");
  }
  steps_.push_back(std::move(step));
}

std::string Decoder::decode(std::vector<std::string> tokens) const {
  std::string out;
  if (none_) {
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  for (const DecoderStep& step : steps_) apply(step, tokens);
  for (const std::string& token : tokens) out += token;
  return out;
}

}  // namespace shardplan
