// Oniguruma patterns on PCRE2 (see regex.h).
#include "executor/text/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "executor/text/tokenizer_error.h"
#include "executor/text/utf8.h"

namespace shardplan {
namespace {

constexpr const char* kSpaceClass = "\\p{Z}\\t-\\r\\x{85}";
constexpr const char* kWordClass = "\\p{L}\\p{M}\\p{N}\\p{Pc}";
constexpr const char* kHexClass = "0-9A-Fa-f";

// Per-thread match state: PCRE2's match data and a JIT stack larger than the 32 KiB default
// (long whitespace runs under `\s+(?!\S)` backtrack deeply).
struct MatchState {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* stack = nullptr;
  MatchState() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~MatchState() {
    pcre2_match_data_free(data);
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
  }
};

MatchState& match_state() {
  thread_local MatchState state;
  return state;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

}  // namespace

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(code); }
};

std::string translate_oniguruma(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 16);
  bool in_class = false;
  size_t i = 0;
  while (i < p.size()) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[i + 1];
      const char* cls = nullptr;
      bool negated = false;
      if (e == 's' || e == 'S') cls = kSpaceClass, negated = e == 'S';
      if (e == 'w' || e == 'W') cls = kWordClass, negated = e == 'W';
      if (e == 'h' || e == 'H') cls = kHexClass, negated = e == 'H';
      if (cls == nullptr) {
        out.append(p.substr(i, 2));
      } else if (!in_class) {
        out += negated ? "[^" : "[";
        out += cls;
        out += "]";
      } else if (!negated) {
        out += cls;
      } else {
        throw std::invalid_argument(std::string("\\") + e + " inside a character class has no PCRE2 equivalent");
      }
      i += 2;
      continue;
    }
    if (in_class) {
      // NOTE: a POSIX class ([:alpha:]) does not end the bracket.
      if (c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
        const size_t close = p.find(":]", i + 2);
        if (close != std::string_view::npos) {
          out.append(p.substr(i, close + 2 - i));
          i = close + 2;
          continue;
        }
      }
      if (c == ']') in_class = false;
      out.push_back(c);
      ++i;
      continue;
    }
    if (c == '[') {
      in_class = true;
      out.push_back(c);
      ++i;
      // A ']' right after '[' or '[^' is a literal.
      if (i < p.size() && p[i] == '^') out.push_back(p[i++]);
      if (i < p.size() && p[i] == ']') out.push_back(p[i++]);
      continue;
    }
    if (c == '(' && i + 1 < p.size() && p[i + 1] == '?') {
      // Inline options (?imx-imx) or (?imx-imx:...): Ruby's m is PCRE2's s.
      size_t j = i + 2;
      std::string flags;
      while (j < p.size() && (p[j] == 'i' || p[j] == 'm' || p[j] == 'x' || p[j] == '-')) {
        flags.push_back(p[j] == 'm' ? 's' : p[j]);
        ++j;
      }
      if (!flags.empty() && j < p.size() && (p[j] == ')' || p[j] == ':')) {
        out += "(?" + flags;
        i = j;
        continue;
      }
    }
    out.push_back(c);
    ++i;
  }
  return out;
}

namespace {

std::shared_ptr<Regex::Code> compile_code(const std::string& pcre2_pattern, const std::string& shown,
                                          const std::string& where, uint32_t extra_options);

}  // namespace

Regex Regex::compile_oniguruma(const std::string& pattern, const std::string& where) {
  std::string translated;
  try {
    translated = translate_oniguruma(pattern);
  } catch (const std::invalid_argument& e) {
    throw_unsupported(where, "the pattern '" + pattern + "': " + e.what() + ";");
  }
  Regex regex;
  regex.code_ = compile_code(translated, pattern, where, PCRE2_MULTILINE);
  return regex;
}

Regex Regex::compile_pcre2(const std::string& pattern, const std::string& where) {
  Regex regex;
  regex.code_ = compile_code(pattern, pattern, where, 0);
  return regex;
}

namespace {

std::shared_ptr<Regex::Code> compile_code(const std::string& pcre2_pattern, const std::string& shown,
                                          const std::string& where, uint32_t extra_options) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  auto code = std::make_shared<Regex::Code>();
  code->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pcre2_pattern.data()), pcre2_pattern.size(),
                             PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK | extra_options, &error, &offset, nullptr);
  if (code->code == nullptr) {
    throw_malformed(where, "the pattern '" + shown + "' does not compile: " + pcre2_message(error));
  }
  // NOTE: without JIT (a platform PCRE2 lacks it for) the interpreter gives the same matches.
  code->jit = pcre2_jit_compile(code->code, PCRE2_JIT_COMPLETE) == 0;
  return code;
}

int run_match(const Regex::Code& code, std::string_view text, size_t start, uint32_t options) {
  MatchState& state = match_state();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  if (code.jit && options == 0) {
    return pcre2_jit_match(code.code, subject, text.size(), start, 0, state.data, state.context);
  }
  return pcre2_match(code.code, subject, text.size(), start, options | PCRE2_NO_UTF_CHECK, state.data, state.context);
}

}  // namespace

void Regex::find_matches(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  MatchState& state = match_state();
  size_t search = 0;
  bool have_last = false;
  size_t last_end = 0;
  while (search <= text.size()) {
    const int rc = run_match(*code_, text, search, 0);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      throw TokenizerError(kTokenizerExitInvalid, "regular expression failed on the text: " + pcre2_message(rc));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(state.data);
    const size_t s = ov[0], e = ov[1];
    if (s == e && have_last && last_end == e) {
      // NOTE: Oniguruma's find_iter refuses an empty match where the last match ended and
      // searches again one character further.
      if (search >= text.size()) break;
      search += utf8_length(static_cast<unsigned char>(text[search]));
      continue;
    }
    out.emplace_back(s, e);
    have_last = true;
    last_end = e;
    search = e;
    if (s == e) {
      // An empty match: the next search starts where it ended (and must not match empty there).
      if (search >= text.size()) break;
    }
  }
}

bool Regex::matches_at(std::string_view text, size_t pos) const {
  return run_match(*code_, text, pos, PCRE2_ANCHORED) > 0;
}

SplitPattern SplitPattern::literal(std::string text, const std::string& where) {
  if (text.empty()) throw_malformed(where, "an empty string pattern");
  SplitPattern pattern;
  pattern.literal_ = std::move(text);
  return pattern;
}

SplitPattern SplitPattern::regex(const std::string& pattern, const std::string& where) {
  SplitPattern out;
  out.regex_ = std::make_shared<Regex>(Regex::compile_oniguruma(pattern, where));
  return out;
}

void SplitPattern::find_spans(std::string_view text, std::vector<PatternSpan>& out) const {
  out.clear();
  if (text.empty()) {
    out.push_back({0, 0, false});
    return;
  }
  size_t prev = 0;
  const auto add_match = [&](size_t s, size_t e) {
    if (prev != s) out.push_back({prev, s, false});
    out.push_back({s, e, true});
    prev = e;
  };
  if (regex_) {
    thread_local std::vector<std::pair<size_t, size_t>> matches;
    matches.clear();
    regex_->find_matches(text, matches);
    for (const auto& [s, e] : matches) add_match(s, e);
  } else {
    size_t from = 0;
    while (true) {
      const size_t s = text.find(literal_, from);
      if (s == std::string_view::npos) break;
      add_match(s, s + literal_.size());
      from = s + literal_.size();
    }
  }
  if (prev != text.size()) out.push_back({prev, text.size(), false});
}

}  // namespace shardplan
