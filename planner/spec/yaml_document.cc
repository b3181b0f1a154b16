// YAML text -> nlohmann::json plus a JSON-pointer -> source-position map (see yaml_document.h).
#include "planner/spec/yaml_document.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <cctype>
#include <regex>
#include <set>
#include <sstream>
#include <utility>

namespace shardplan {
namespace {

constexpr int kMaxDepth = 256;
// Aliases can expand a small file into a huge tree ("billion laughs"); no spec needs this many.
constexpr long kMaxValues = 1000000;
// The longest key and scalar a spec may hold: a spec's names, paths and axes are short, and the
// checks after this one (schema patterns) must never see an unbounded string.
constexpr size_t kMaxKeyChars = 256;
constexpr size_t kMaxScalarChars = 4096;

const std::string kCoreTag = "tag:yaml.org,2002:";

SourcePos to_pos(const YAML::Mark& mark) {
  // NOTE: yaml-cpp marks are 0-based; a null mark (line -1) means "unknown".
  if (mark.line < 0 || mark.column < 0) return SourcePos{};
  return SourcePos{mark.line + 1, mark.column + 1};
}

std::string pos_text(SourcePos pos) {
  return std::to_string(pos.line) + ":" + std::to_string(pos.column);
}

bool is_identifier(const std::string& s) {
  // [A-Za-z_][A-Za-z0-9_]*, by hand: std::regex recurses once per character.
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

// "modules" + 1 -> "modules[1]"; "workload" + "batch" -> "workload.batch"; "" + "mesh" -> "mesh".
std::string append_display(const std::string& base, const std::string& token, bool is_index) {
  if (is_index) return base + "[" + token + "]";
  if (!is_identifier(token)) return base + "['" + token + "']";
  return base.empty() ? token : base + "." + token;
}

// YAML 1.2 core schema resolution of a plain scalar's text.
nlohmann::json resolve_plain_scalar(const std::string& s) {
  static const std::regex kDecimal("[-+]?[0-9]+");
  static const std::regex kOctal("0o[0-7]+");
  static const std::regex kHex("0x[0-9a-fA-F]+");
  static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  static const std::regex kInf("[-+]?\\.(inf|Inf|INF)");
  static const std::regex kNan("\\.(nan|NaN|NAN)");

  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  // NOTE: no number is this long; std::regex would recurse once per character.
  if (s.size() > 64) return s;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;

  auto unsigned_value = [](const std::string& digits, int base) -> nlohmann::json {
    errno = 0;
    unsigned long long u = std::strtoull(digits.c_str(), nullptr, base);
    if (errno == ERANGE) return std::strtod(digits.c_str(), nullptr);  // beyond 64 bits
    if (u <= static_cast<unsigned long long>(std::numeric_limits<int64_t>::max())) {
      return static_cast<int64_t>(u);
    }
    return static_cast<uint64_t>(u);
  };
  if (std::regex_match(s, kDecimal)) {
    errno = 0;
    long long v = std::strtoll(s.c_str(), nullptr, 10);
    if (errno != ERANGE) return static_cast<int64_t>(v);
    if (s[0] == '-') return std::strtod(s.c_str(), nullptr);
    return unsigned_value(s[0] == '+' ? s.substr(1) : s, 10);
  }
  if (std::regex_match(s, kOctal)) return unsigned_value(s.substr(2), 8);
  if (std::regex_match(s, kHex)) return unsigned_value(s.substr(2), 16);
  if (std::regex_match(s, kFloat)) return std::strtod(s.c_str(), nullptr);
  if (std::regex_match(s, kInf)) {
    return s[0] == '-' ? -std::numeric_limits<double>::infinity()
                       : std::numeric_limits<double>::infinity();
  }
  if (std::regex_match(s, kNan)) return std::numeric_limits<double>::quiet_NaN();
  return s;
}

class Converter {
 public:
  Converter(const std::string& text, const std::string& file, Diagnostics& diags,
            YamlDocument& doc)
      : text_(text), file_(file), diags_(diags), doc_(doc) {}

  // Converts `node` (at `pointer`, shown to users as `display`) and records its position.
  // `empty_pos` is where an empty value (`key:` with nothing after it) is reported: yaml-cpp
  // marks it at the next token, which may be on another line.
  nlohmann::json convert(const YAML::Node& node, const std::string& pointer,
                         const std::string& display, SourcePos empty_pos, int depth) {
    SourcePos pos = to_pos(node.Mark());
    if (node.IsNull() && !is_written_null(node.Mark())) pos = empty_pos;
    doc_.value_pos[pointer] = pos;

    if (++values_ > kMaxValues || depth > kMaxDepth) {
      if (!too_large_reported_) {
        diags_.error(file_, pos,
                     "the spec is too large or nests too deep after expanding aliases (more than " +
                         std::to_string(kMaxValues) + " values or " + std::to_string(kMaxDepth) +
                         " levels)");
        too_large_reported_ = true;
      }
      return nullptr;
    }
    check_tag(node, pos);

    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        return nullptr;
      case YAML::NodeType::Scalar:
        if (node.Scalar().size() > kMaxScalarChars) {
          diags_.error(file_, pos,
                       "a value of " + std::to_string(node.Scalar().size()) + " characters" +
                           (display.empty() ? "" : " at " + display) + " (at most " +
                           std::to_string(kMaxScalarChars) + ")");
          too_large_reported_ = true;
          return nullptr;
        }
        if (const size_t bad = invalid_utf8_at(node.Scalar()); bad != std::string::npos) {
          diags_.error(file_, pos,
                       "a value that is not valid UTF-8" + (display.empty() ? std::string() : " at " + display) +
                           " (byte " + std::to_string(bad + 1) + " of it)");
          too_large_reported_ = true;  // refused: JSON output could not carry it
          return nullptr;
        }
        return convert_scalar(node, pos);
      case YAML::NodeType::Sequence: {
        nlohmann::json array = nlohmann::json::array();
        size_t index = 0;
        for (const YAML::Node& item : node) {
          std::string token = std::to_string(index++);
          array.push_back(convert(item, pointer + "/" + token,
                                  append_display(display, token, /*is_index=*/true), pos,
                                  depth + 1));
        }
        return array;
      }
      case YAML::NodeType::Map: {
        nlohmann::json object = nlohmann::json::object();
        const std::string where = display.empty() ? "" : " in " + display;
        for (auto it = node.begin(); it != node.end(); ++it) {
          // NOTE: copies, not references: `it->` returns a temporary proxy (yaml-cpp nodes are
          // cheap handles).
          const YAML::Node key = it->first;
          const YAML::Node value = it->second;
          SourcePos key_pos = to_pos(key.Mark());
          if (!key.IsScalar()) {
            diags_.error(file_, key_pos,
                         std::string("a mapping key must be a plain name, not ") +
                             (key.IsMap()        ? "a mapping"
                              : key.IsSequence() ? "a list"
                                                 : "null") +
                             where);
            continue;
          }
          const std::string name = key.Scalar();
          if (invalid_utf8_at(name) != std::string::npos) {
            diags_.error(file_, key_pos, "a key that is not valid UTF-8" + where);
            too_large_reported_ = true;  // refused: JSON output could not carry it
            continue;
          }
          if (name.size() > kMaxKeyChars) {
            diags_.error(file_, key_pos,
                         "a key of " + std::to_string(name.size()) + " characters" + where + " (at most " +
                             std::to_string(kMaxKeyChars) + ")");
            too_large_reported_ = true;
            continue;
          }
          const std::string child = pointer + "/" + escape_pointer_token(name);
          if (object.contains(name)) {
            diags_.error(file_, key_pos,
                         "duplicate key '" + name + "'" + where + " (first at " +
                             pos_text(doc_.key_pos[child]) + ")");
            continue;
          }
          doc_.key_pos[child] = key_pos;
          object[name] = convert(value, child, append_display(display, name, false),
                                 key_pos, depth + 1);
        }
        return object;
      }
    }
    return nullptr;
  }

  bool too_large() const { return too_large_reported_; }

 private:
  // yaml-cpp makes a Null node both for `~`/`null` and for an empty value; only the first is
  // written where the mark points.
  bool is_written_null(const YAML::Mark& mark) const {
    if (mark.pos < 0 || static_cast<size_t>(mark.pos) >= text_.size()) return false;
    for (const char* word : {"~", "null", "Null", "NULL"}) {
      if (text_.compare(static_cast<size_t>(mark.pos), std::char_traits<char>::length(word),
                        word) == 0) {
        return true;
      }
    }
    return false;
  }

  void check_tag(const YAML::Node& node, SourcePos pos) {
    const std::string& tag = node.Tag();
    if (tag.empty() || tag == "?" || tag == "!") return;
    static const std::set<std::string> kAllowed = {"str", "int", "float", "bool", "null",
                                                   "map", "seq"};
    if (tag.compare(0, kCoreTag.size(), kCoreTag) == 0 &&
        kAllowed.count(tag.substr(kCoreTag.size())) > 0) {
      return;
    }
    diags_.error(file_, pos, "unsupported YAML tag '" + display_tag(tag) + "'");
  }

  static std::string display_tag(const std::string& tag) {
    if (tag.compare(0, kCoreTag.size(), kCoreTag) == 0) return "!!" + tag.substr(kCoreTag.size());
    return tag;
  }

  nlohmann::json convert_scalar(const YAML::Node& node, SourcePos pos) {
    const std::string& tag = node.Tag();
    const std::string& text = node.Scalar();
    // NOTE: yaml-cpp tags every quoted and block scalar "!" (non-specific), plain ones "?".
    if (tag == "!" || tag == kCoreTag + "str") return text;
    nlohmann::json value = resolve_plain_scalar(text);
    if (tag == "?" || tag.compare(0, kCoreTag.size(), kCoreTag) != 0) return value;

    // An explicit core tag: the text must read as that type.
    const std::string type = tag.substr(kCoreTag.size());
    bool ok = (type == "int" && value.is_number_integer()) ||
              (type == "float" && value.is_number()) || (type == "bool" && value.is_boolean()) ||
              (type == "null" && value.is_null());
    if (type == "float" && value.is_number_integer()) value = value.get<double>();
    if (!ok && (type == "int" || type == "float" || type == "bool" || type == "null")) {
      diags_.error(file_, pos, "'" + text + "' is not a valid " + display_tag(tag));
    }
    return value;
  }

  const std::string& text_;
  const std::string& file_;
  Diagnostics& diags_;
  YamlDocument& doc_;
  long values_ = 0;
  bool too_large_reported_ = false;
};

std::string parent_pointer(const std::string& pointer) {
  size_t slash = pointer.rfind('/');
  return slash == std::string::npos ? std::string() : pointer.substr(0, slash);
}

}  // namespace

std::string escape_pointer_token(const std::string& token) {
  std::string out;
  for (char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

std::vector<std::string> split_pointer(const std::string& pointer) {
  std::vector<std::string> tokens;
  size_t start = 0;
  while (start < pointer.size()) {
    // pointer[start] is '/'
    size_t end = pointer.find('/', start + 1);
    if (end == std::string::npos) end = pointer.size();
    std::string token;
    for (size_t i = start + 1; i < end; ++i) {
      if (pointer[i] == '~' && i + 1 < end && (pointer[i + 1] == '0' || pointer[i + 1] == '1')) {
        token += pointer[i + 1] == '0' ? '~' : '/';
        ++i;
      } else {
        token += pointer[i];
      }
    }
    tokens.push_back(std::move(token));
    start = end;
  }
  return tokens;
}

SourcePos YamlDocument::value_at(const std::string& pointer) const {
  std::string p = pointer;
  while (true) {
    auto it = value_pos.find(p);
    if (it != value_pos.end()) return it->second;
    if (p.empty()) return SourcePos{};
    p = parent_pointer(p);
  }
}

SourcePos YamlDocument::key_at(const std::string& pointer) const {
  std::string p = pointer;
  while (true) {
    auto key = key_pos.find(p);
    if (key != key_pos.end()) return key->second;
    auto value = value_pos.find(p);
    if (value != value_pos.end()) return value->second;
    if (p.empty()) return SourcePos{};
    p = parent_pointer(p);
  }
}

std::vector<std::string> YamlDocument::keys_in_order(const std::string& pointer) const {
  std::vector<std::pair<SourcePos, std::string>> keys;
  const nlohmann::json* node = nullptr;
  try {
    const nlohmann::json::json_pointer ptr(pointer);
    if (root.contains(ptr)) node = &root.at(ptr);
  } catch (const nlohmann::json::exception&) {
    return {};  // not a JSON pointer
  }
  if (node == nullptr || !node->is_object()) return {};
  for (const auto& item : node->items()) {
    auto it = key_pos.find(pointer + "/" + escape_pointer_token(item.key()));
    keys.emplace_back(it == key_pos.end() ? SourcePos{} : it->second, item.key());
  }
  std::stable_sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) {
    return std::make_pair(a.first.line, a.first.column) <
           std::make_pair(b.first.line, b.first.column);
  });
  std::vector<std::string> names;
  for (auto& key : keys) names.push_back(std::move(key.second));
  return names;
}

std::string YamlDocument::display_path(const std::string& pointer) const {
  if (pointer.empty()) return "the spec";
  std::string out;
  const nlohmann::json* node = &root;
  for (const std::string& token : split_pointer(pointer)) {
    bool is_index = node != nullptr && node->is_array();
    out = append_display(out, token, is_index);
    if (node == nullptr) continue;
    if (node->is_array()) {
      size_t index = 0;
      bool numeric = !token.empty() && token.find_first_not_of("0123456789") == std::string::npos;
      if (numeric) index = std::strtoull(token.c_str(), nullptr, 10);
      node = numeric && index < node->size() ? &(*node)[index] : nullptr;
    } else if (node->is_object() && node->contains(token)) {
      node = &(*node)[token];
    } else {
      node = nullptr;
    }
  }
  return out;
}

namespace {

// The first two documents of a YAML stream: the mark of each one's root node (of its start when
// it has none), nothing built.
class DocumentRoots : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts, roots;

  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t, const std::string&) override {
    node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnMapEnd() override {}

 private:
  void node(const YAML::Mark& mark) {
    if (roots.size() < starts.size()) roots.push_back(mark);
  }
};

}  // namespace

std::optional<YamlDocument> parse_yaml_document(const std::string& text, const std::string& file,
                                                Diagnostics& diags) {
  // NOTE: not YAML::LoadAll: yaml-cpp 0.7 never returns from LoadAll(",") (a stray ',' at the top
  // level: its parser hands out the same empty document again and again, each one allocated, until
  // memory runs out; found by tests/fuzz/spec_fuzz). A spec is one document, so the stream is read
  // for at most two, and YAML::Load builds the first.
  DocumentRoots documents;
  YAML::Node root;
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    while (documents.starts.size() < 2 && parser.HandleNextDocument(documents)) {
    }
    if (documents.starts.size() == 1) root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    // NOTE: yaml-cpp says "illegal map value" (or the like) for a tab in the indentation; a user
    // needs to hear that YAML indents with spaces. The tab: the first one before the line's text.
    std::string hint;
    if (e.mark.line >= 0) {
      std::istringstream lines(text);
      std::string line;
      for (int i = 0; i <= e.mark.line && std::getline(lines, line); ++i) {
      }
      const size_t tab = line.find('\t'), text_start = line.find_first_not_of(" \t");
      if (tab != std::string::npos && (text_start == std::string::npos || tab < text_start)) {
        hint = " (line " + std::to_string(e.mark.line + 1) + " is indented with a tab at column " +
               std::to_string(tab + 1) + ": YAML indents with spaces only)";
      }
    }
    diags.error(file, to_pos(e.mark), "YAML syntax error: " + e.msg + hint);
    return std::nullopt;
  }
  if (documents.starts.empty() || (documents.starts.size() == 1 && root.IsNull())) {
    diags.error(file, SourcePos{1, 1}, "the spec is empty");
    return std::nullopt;
  }
  if (documents.starts.size() > 1) {
    const YAML::Mark second = documents.roots.size() > 1 ? documents.roots[1] : documents.starts[1];
    diags.error(file, to_pos(second), "a spec is one YAML document, but a second one starts here");
    return std::nullopt;
  }

  YamlDocument doc;
  Converter converter(text, file, diags, doc);
  try {
    doc.root = converter.convert(root, "", "", SourcePos{1, 1}, 0);
  } catch (const YAML::Exception& e) {
    diags.error(file, to_pos(e.mark), "YAML error: " + e.msg);
    return std::nullopt;
  }
  if (converter.too_large()) return std::nullopt;  // a truncated tree would only mislead
  return doc;
}

}  // namespace shardplan
