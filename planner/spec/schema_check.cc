// JSON Schema validation of a spec with valijson, and the translation of valijson's nested reports
// into one diagnostic per problem (see schema_check.h for what is reported and how it reads).
//
// valijson reports every failure up the tree: a bad `mode` in modules[1] gives the enum error at
// /modules/1/mode, then "Failed to validate against schema associated with property name 'mode'"
// at /modules/1, "Failed to validate item #1 in array." at /modules, and so on. The wrappers are
// dropped here; what is left is grouped by location and phrased with the schema's own words (its
// `properties`, `enum`, `minimum`, `title`s), so the schema stays the one source of the rules.
#include "planner/spec/schema_check.h"

// NOTE: without this, valijson calls abort() on a schema it cannot parse.
#ifndef VALIJSON_USE_EXCEPTIONS
#define VALIJSON_USE_EXCEPTIONS 1
#endif

#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <map>
#include <regex>
#include <set>
#include <tuple>
#include <vector>

namespace shardplan {
namespace {

using Json = nlohmann::json;
// The schema keeps its key order, so "allowed: kind, path, mode, axes" reads as the schema does.
using Schema = nlohmann::ordered_json;

// What one valijson error says, by the constraint that failed.
enum class IssueKind {
  kChildFailed,  // a wrapper: the named property / item failed (detail: its pointer token)
  kWrapper,      // a wrapper with nothing more to say ("Failed to validate against additional...")
  kAnyOf,        // none of the anyOf / oneOf branches matched
  kUnknownKey,   // additionalProperties: false
  kMissingKey,   // required (detail: the key)
  kType,
  kEnum,
  kConst,
  kMinimum,
  kMaximum,
  kPattern,
  kMinLength,
  kMinItems,
  kUnique,  // uniqueItems (index_a < index_b)
  kOther,   // anything not translated: valijson's text is shown
};

struct Issue {
  std::string pointer;
  IssueKind kind = IssueKind::kOther;
  std::string detail;
  size_t index_a = 0, index_b = 0;
  std::string raw;  // valijson's description
};

// The schema keyword behind an issue, to tell which anyOf branch an error came from.
const char* keyword_of(IssueKind kind) {
  switch (kind) {
    case IssueKind::kType: return "type";
    case IssueKind::kEnum: return "enum";
    case IssueKind::kConst: return "const";
    case IssueKind::kMinimum: return "minimum";
    case IssueKind::kMaximum: return "maximum";
    case IssueKind::kPattern: return "pattern";
    case IssueKind::kMinLength: return "minLength";
    case IssueKind::kMinItems: return "minItems";
    case IssueKind::kUnique: return "uniqueItems";
    case IssueKind::kMissingKey: return "required";
    case IssueKind::kUnknownKey: return "additionalProperties";
    default: return nullptr;
  }
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// The name quoted after `prefix`, which ends with the opening quote, up to the last quote:
// ("Missing required property 'x'.", "property '") -> "x".
std::string quoted_after(const std::string& s, const std::string& prefix) {
  size_t at = s.find(prefix);
  if (at == std::string::npos) return "";
  size_t open = at + prefix.size() - 1;
  size_t close = s.rfind('\'');
  if (close == std::string::npos || close <= open) return "";
  return s.substr(open + 1, close - open - 1);
}

// "#12" in "item #12 in array" -> 12.
size_t number_after_hash(const std::string& s, size_t from = 0) {
  size_t hash = s.find('#', from);
  return hash == std::string::npos ? 0 : std::strtoull(s.c_str() + hash + 1, nullptr, 10);
}

// valijson context {"<root>", "[modules]", "[1]"} -> "/modules/1".
std::string pointer_of(const std::vector<std::string>& context) {
  std::string pointer;
  for (const std::string& element : context) {
    if (element == "<root>") continue;
    std::string token = element;
    if (token.size() >= 2 && token.front() == '[' && token.back() == ']') {
      token = token.substr(1, token.size() - 2);
    }
    pointer += "/" + escape_pointer_token(token);
  }
  return pointer;
}

Issue classify(const valijson::ValidationResults::Error& error) {
  Issue issue;
  issue.pointer = pointer_of(error.context);
  issue.raw = error.description;
  const std::string& d = error.description;
  static const std::string kProperty =
      "Failed to validate against schema associated with property name '";
  static const std::string kItem = "Failed to validate item #";
  static const std::string kUnknown = "Object contains a property that could not be validated";
  static const std::string kMissing = "Missing required property '";
  if (starts_with(d, kProperty)) {
    issue.kind = IssueKind::kChildFailed;
    issue.detail = escape_pointer_token(quoted_after(d, kProperty));
  } else if (starts_with(d, kItem)) {
    issue.kind = IssueKind::kChildFailed;
    issue.detail = std::to_string(number_after_hash(d));
    // "Failed to validate item #N against corresponding item schema." already carries the item.
    if (d.find(" in array.") == std::string::npos) issue.kind = IssueKind::kWrapper;
  } else if (starts_with(d, "Failed to validate against child schema #") ||
             starts_with(d, "Failed to validate against additional properties schema") ||
             starts_with(d, "Failed to validate against schema associated with pattern") ||
             starts_with(d, "Failed to validate against a conditional schema") ||
             starts_with(d, "Failed to validate against dependent schema")) {
    issue.kind = IssueKind::kWrapper;
  } else if (starts_with(d, "Failed to validate against any schemas allowed by anyOf") ||
             starts_with(d, "Failed to validate against any child schemas allowed by oneOf") ||
             starts_with(d, "Failed to validate against exactly one child schema")) {
    issue.kind = IssueKind::kAnyOf;
  } else if (starts_with(d, kUnknown)) {
    issue.kind = IssueKind::kUnknownKey;
    issue.detail = quoted_after(d, "constraints: '");
  } else if (starts_with(d, kMissing)) {
    issue.kind = IssueKind::kMissingKey;
    issue.detail = quoted_after(d, kMissing);
  } else if (starts_with(d, "Value type not permitted by 'type' constraint")) {
    issue.kind = IssueKind::kType;
  } else if (starts_with(d, "Failed to match against any enum values")) {
    issue.kind = IssueKind::kEnum;
  } else if (starts_with(d, "Failed to match expected value set by 'const' constraint")) {
    issue.kind = IssueKind::kConst;
  } else if (starts_with(d, "Expected number greater than")) {
    issue.kind = IssueKind::kMinimum;
  } else if (starts_with(d, "Expected number less than")) {
    issue.kind = IssueKind::kMaximum;
  } else if (starts_with(d, "Failed to match regex specified by 'pattern' constraint")) {
    issue.kind = IssueKind::kPattern;
  } else if (starts_with(d, "String should be no fewer than")) {
    issue.kind = IssueKind::kMinLength;
  } else if (starts_with(d, "Array should contain no fewer than")) {
    issue.kind = IssueKind::kMinItems;
  } else if (starts_with(d, "Elements at indexes #")) {
    issue.kind = IssueKind::kUnique;
    issue.index_a = number_after_hash(d);
    issue.index_b = number_after_hash(d, d.find('#') + 1);
  }
  return issue;
}

bool is_descendant_or_self(const std::string& pointer, const std::string& ancestor) {
  return pointer == ancestor || starts_with(pointer, ancestor + "/");
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? separator : "") + items[i];
  return out;
}

std::string with_article(const std::string& noun) {
  if (noun.empty()) return noun;
  return (std::string("aeiou").find(noun[0]) != std::string::npos ? "an " : "a ") + noun;
}

// "^[a-z][a-z0-9_]*$" -> "[a-z][a-z0-9_]*": how users read a name rule.
std::string display_pattern(std::string pattern) {
  if (!pattern.empty() && pattern.front() == '^') pattern.erase(0, 1);
  if (!pattern.empty() && pattern.back() == '$') pattern.pop_back();
  return pattern;
}

// A value as a message quotes it: 'tensr', 0, 1.5, true, null, a list, a mapping.
std::string show_value(const Json& v) {
  if (v.is_string()) return "'" + v.get<std::string>() + "'";
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isnan(d)) return ".nan";
    if (std::isinf(d)) return d < 0 ? "-.inf" : ".inf";
  }
  if (v.is_array()) return "a list";
  if (v.is_object()) return "a mapping";
  return v.dump();
}

std::string show_schema_value(const Schema& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

std::string type_noun(const std::string& type) {
  if (type == "integer") return "an integer";
  if (type == "number") return "a number";
  if (type == "string") return "a string";
  if (type == "boolean") return "true or false";
  if (type == "object") return "a mapping";
  if (type == "array") return "a list";
  if (type == "null") return "null";
  return type;
}

bool value_has_type(const Json& v, const std::string& type) {
  if (type == "integer") return v.is_number_integer();
  if (type == "number") return v.is_number();
  if (type == "string") return v.is_string();
  if (type == "boolean") return v.is_boolean();
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "null") return v.is_null();
  return false;
}

class SchemaView {
 public:
  explicit SchemaView(const Schema& root) : root_(root) {}

  // Follows "$ref": "#/..." within the schema (valijson ignores "$id", so refs are local).
  const Schema* resolve(const Schema* s) const {
    for (int hops = 0; s != nullptr && s->is_object() && s->contains("$ref") && hops < 32; ++hops) {
      const std::string ref = (*s)["$ref"].get<std::string>();
      if (!starts_with(ref, "#")) return nullptr;
      Schema::json_pointer target(ref.substr(1));
      s = root_.contains(target) ? &root_.at(target) : nullptr;
    }
    return s;
  }

  // Whether `s` lets `v` through on type alone (type, or the types of its enum / const values).
  bool admits_type(const Schema* s, const Json& v) const {
    s = resolve(s);
    if (s == nullptr || !s->is_object()) return true;
    if (s->contains("type")) {
      const Schema& type = (*s)["type"];
      if (type.is_string()) return value_has_type(v, type.get<std::string>());
      for (const Schema& t : type) {
        if (value_has_type(v, t.get<std::string>())) return true;
      }
      return false;
    }
    return true;
  }

  // The schema that applies to `v` once an anyOf/oneOf is decided by the value's type: the first
  // branch whose type admits it; `s` itself when there is no such branch or no anyOf.
  const Schema* effective(const Schema* s, const Json& v) const {
    s = resolve(s);
    if (s == nullptr || !s->is_object()) return s;
    for (const char* key : {"anyOf", "oneOf"}) {
      if (!s->contains(key) || all_required_only((*s)[key])) continue;
      for (const Schema& branch : (*s)[key]) {
        if (admits_type(&branch, v)) return resolve(&branch);
      }
    }
    return s;
  }

  // The schema for the value at `tokens` of `doc` (nullptr where the schema says nothing).
  const Schema* at(const std::vector<std::string>& tokens, const Json& doc) const {
    const Schema* s = resolve(&root_);
    const Json* v = &doc;
    for (const std::string& token : tokens) {
      if (s == nullptr || v == nullptr) return nullptr;
      s = effective(s, *v);
      if (s == nullptr || !s->is_object()) return nullptr;
      const Schema* child = nullptr;
      if (v->is_object()) {
        child = member_schema(*s, token);
        v = v->contains(token) ? &(*v)[token] : nullptr;
      } else if (v->is_array()) {
        if (s->contains("items") && (*s)["items"].is_object()) child = &(*s)["items"];
        size_t index = std::strtoull(token.c_str(), nullptr, 10);
        v = index < v->size() ? &(*v)[index] : nullptr;
      } else {
        return nullptr;
      }
      s = resolve(child);
    }
    return s;
  }

  // properties[name], else a matching patternProperties, else additionalProperties (if a schema).
  const Schema* member_schema(const Schema& s, const std::string& name) const {
    if (s.contains("properties") && s["properties"].contains(name)) return &s["properties"][name];
    if (s.contains("patternProperties")) {
      for (const auto& item : s["patternProperties"].items()) {
        if (std::regex_search(name, std::regex(item.key()))) return &item.value();
      }
    }
    if (s.contains("additionalProperties") && s["additionalProperties"].is_object()) {
      return &s["additionalProperties"];
    }
    return nullptr;
  }

  // In words, what a value must be: "an integer >= 1", "one of replicate, tensor, data, expert",
  // "a module kind (embedding, ...) or a non-empty list of module kinds".
  std::string describe(const Schema* s) const {
    s = resolve(s);
    if (s == nullptr || !s->is_object()) return "valid";
    for (const char* key : {"anyOf", "oneOf"}) {
      if (s->contains(key) && !all_required_only((*s)[key])) {
        std::vector<std::string> parts;
        for (const Schema& branch : (*s)[key]) parts.push_back(describe(&branch));
        return join(parts, " or ");
      }
    }
    if (s->contains("const")) return show_schema_value((*s)["const"]);
    std::string out;
    // NOTE: the root's title names the whole file for editors ("shardplan sharding spec, ..."),
    // not a kind of value; the root is described by its type.
    if (s->contains("title") && s != resolve(&root_)) {
      out = with_article((*s)["title"].get<std::string>());
      if (s->value("type", "") == "object") out += " (a mapping)";
    } else if (s->contains("type") && (*s)["type"].is_string()) {
      const std::string type = (*s)["type"].get<std::string>();
      out = type_noun(type);
      if (type == "string" && s->value("minLength", 0) >= 1) out = "a non-empty string";
    } else if (s->contains("type")) {
      std::vector<std::string> nouns;
      for (const Schema& t : (*s)["type"]) nouns.push_back(type_noun(t.get<std::string>()));
      out = join(nouns, " or ");
    }
    if (s->contains("enum")) {
      std::string values = enum_list(*s);
      out = out.empty() || !s->contains("title") ? "one of " + values : out + " (" + values + ")";
    }
    if (s->contains("pattern")) {
      out += " matching " + display_pattern((*s)["pattern"].get<std::string>());
    }
    if (s->contains("minimum")) out += " >= " + show_schema_value((*s)["minimum"]);
    if (s->contains("maximum")) out += " <= " + show_schema_value((*s)["maximum"]);
    return out.empty() ? "valid" : out;
  }

  static std::string enum_list(const Schema& s) {
    std::vector<std::string> values;
    for (const Schema& v : s["enum"]) values.push_back(show_schema_value(v));
    return join(values, ", ");
  }

  // An anyOf whose branches only require keys: "at least one of these keys".
  static bool all_required_only(const Schema& branches) {
    if (!branches.is_array() || branches.empty()) return false;
    for (const Schema& branch : branches) {
      if (!branch.is_object() || !branch.contains("required")) return false;
      for (const auto& item : branch.items()) {
        if (item.key() != "required" && item.key() != "description" && item.key() != "title") {
          return false;
        }
      }
    }
    return true;
  }

 private:
  const Schema& root_;
};

// Builds the diagnostics of one check_against_schema call; they are sorted before they go out.
class Reporter {
 public:
  Reporter(const YamlDocument& doc, const SchemaView& schema, const std::string& file)
      : doc_(doc), schema_(schema), file_(file) {}

  void report(const std::vector<Issue>& all_issues) {
    // Every location valijson says failed, from the wrappers too: the safety net below makes
    // sure each one gets at least one diagnostic.
    std::set<std::string> failed;
    std::vector<Issue> issues;
    for (const Issue& issue : all_issues) {
      failed.insert(issue.pointer);
      if (issue.kind == IssueKind::kChildFailed) {
        failed.insert(issue.pointer + "/" + issue.detail);
      } else if (issue.kind != IssueKind::kWrapper) {
        issues.push_back(issue);
      }
    }

    resolve_any_of(issues);

    std::map<std::string, std::vector<const Issue*>> by_pointer;
    for (const Issue& issue : issues) by_pointer[issue.pointer].push_back(&issue);
    for (const auto& [pointer, group] : by_pointer) report_location(pointer, group);

    for (const std::string& pointer : failed) check_property_names(pointer);

    for (const std::string& pointer : failed) {
      bool covered = std::any_of(reported_.begin(), reported_.end(), [&](const std::string& p) {
        return is_descendant_or_self(p, pointer);
      });
      if (covered) continue;
      std::vector<std::string> raws;
      for (const Issue& issue : all_issues) {
        if (issue.pointer == pointer) raws.push_back(issue.raw);
      }
      add(pointer, doc_.value_at(pointer),
          doc_.display_path(pointer) + " does not match the schema" +
              (raws.empty() ? "" : " (" + join(raws, " ") + ")"));
    }
  }

  std::vector<Diagnostic> take() {
    std::sort(out_.begin(), out_.end(), [](const Diagnostic& a, const Diagnostic& b) {
      return std::tie(a.pos.line, a.pos.column, a.message) <
             std::tie(b.pos.line, b.pos.column, b.message);
    });
    out_.erase(std::unique(out_.begin(), out_.end(),
                           [](const Diagnostic& a, const Diagnostic& b) {
                             return a.pos.line == b.pos.line && a.pos.column == b.pos.column &&
                                    a.message == b.message;
                           }),
               out_.end());
    return std::move(out_);
  }

 private:
  const Json* value(const std::string& pointer) const {
    Json::json_pointer ptr(pointer);
    return doc_.root.contains(ptr) ? &doc_.root.at(ptr) : nullptr;
  }

  const Schema* schema_at(const std::string& pointer) const {
    return schema_.at(split_pointer(pointer), doc_.root);
  }

  // " in modules[1]", or "" at the root.
  std::string in(const std::string& pointer) const {
    return pointer.empty() ? "" : " in " + doc_.display_path(pointer);
  }

  void add(const std::string& pointer, SourcePos pos, std::string message) {
    reported_.push_back(pointer);
    out_.push_back(Diagnostic{file_, pos, Severity::kError, std::move(message)});
  }

  // An anyOf reports the errors of every branch, most of them beside the point. Two shapes:
  //   - branches that only require keys (a rule needs `kind` or `path`): one "needs at least one
  //     of" message instead of a "missing required key" per branch;
  //   - branches of different types (`kind: attention` or `kind: [attention, mlp]`): the value's
  //     type picks the branch; errors at this location from the other branches are dropped. When
  //     no branch has the value's type, one message names every alternative.
  void resolve_any_of(std::vector<Issue>& issues) {
    std::set<std::string> any_of_pointers;
    for (const Issue& issue : issues) {
      if (issue.kind == IssueKind::kAnyOf) any_of_pointers.insert(issue.pointer);
    }
    for (const std::string& pointer : any_of_pointers) {
      const Schema* s = schema_at(pointer);
      const Json* v = value(pointer);
      auto drop = [&](auto predicate) {
        issues.erase(std::remove_if(issues.begin(), issues.end(),
                                    [&](const Issue& i) {
                                      return i.pointer == pointer && predicate(i);
                                    }),
                     issues.end());
      };
      drop([](const Issue& i) { return i.kind == IssueKind::kAnyOf; });
      if (s == nullptr || v == nullptr) continue;
      const char* key = s->contains("anyOf") ? "anyOf" : s->contains("oneOf") ? "oneOf" : nullptr;
      if (key == nullptr) continue;
      const Schema& branches = (*s)[key];

      if (SchemaView::all_required_only(branches)) {
        std::set<std::string> own_required;
        if (s->contains("required")) {
          for (const Schema& r : (*s)["required"]) own_required.insert(r.get<std::string>());
        }
        std::vector<std::string> names;
        for (const Schema& branch : branches) {
          for (const Schema& r : branch["required"]) names.push_back(r.get<std::string>());
        }
        drop([&](const Issue& i) {
          return i.kind == IssueKind::kMissingKey && own_required.count(i.detail) == 0 &&
                 std::find(names.begin(), names.end(), i.detail) != names.end();
        });
        std::vector<std::string> quoted;
        for (const std::string& n : names) quoted.push_back("'" + n + "'");
        add(pointer, doc_.key_at(pointer),
            doc_.display_path(pointer) + " needs at least one of " + join(quoted, ", "));
        continue;
      }

      const Schema* chosen = schema_.effective(s, *v);
      if (chosen != s) {
        drop([&](const Issue& i) {
          const char* keyword = keyword_of(i.kind);
          if (i.kind == IssueKind::kType) return true;  // the chosen branch admits the type
          return keyword != nullptr && !chosen->contains(keyword) && !s->contains(keyword);
        });
      } else {
        drop([](const Issue&) { return true; });
        add(pointer, doc_.value_at(pointer),
            doc_.display_path(pointer) + " must be " + schema_.describe(s) + ", got " +
                show_value(*v));
      }
    }
  }

  // The issues left at one location, as diagnostics: structural ones (keys, items) each on its
  // own, the value ones merged into a single message.
  void report_location(const std::string& pointer, const std::vector<const Issue*>& group) {
    const Json* v = value(pointer);
    const Schema* s = v ? schema_.effective(schema_at(pointer), *v) : nullptr;
    const std::string path = doc_.display_path(pointer);
    std::set<IssueKind> value_kinds;
    std::set<size_t> repeated;
    for (const Issue* issue : group) {
      switch (issue->kind) {
        case IssueKind::kUnknownKey:
          report_unknown_keys(pointer, s, *issue);
          break;
        case IssueKind::kMissingKey:
          add(pointer, doc_.key_at(pointer),
              "missing required key '" + issue->detail + "'" + in(pointer));
          break;
        case IssueKind::kUnique:
          if (v && v->is_array() && issue->index_b < v->size() &&
              repeated.insert(issue->index_b).second) {
            const std::string item = pointer + "/" + std::to_string(issue->index_b);
            add(item, doc_.value_at(item),
                path + " lists " + show_value((*v)[issue->index_b]) + " more than once");
          }
          break;
        case IssueKind::kMinItems: {
          int min_items = s ? s->value("minItems", 1) : 1;
          add(pointer, doc_.value_at(pointer),
              min_items <= 1 ? path + " must not be empty"
                             : path + " must have at least " + std::to_string(min_items) +
                                   " items, got " + std::to_string(v ? v->size() : 0));
          break;
        }
        case IssueKind::kType:
        case IssueKind::kEnum:
        case IssueKind::kConst:
        case IssueKind::kMinimum:
        case IssueKind::kMaximum:
        case IssueKind::kPattern:
        case IssueKind::kMinLength:
          value_kinds.insert(issue->kind);
          break;
        default:
          add(pointer, doc_.value_at(pointer), path + ": " + issue->raw);
          break;
      }
    }
    if (!value_kinds.empty() && v != nullptr) report_value(pointer, *v, s, value_kinds);
  }

  void report_value(const std::string& pointer, const Json& v, const Schema* s,
                    const std::set<IssueKind>& kinds) {
    const std::string path = doc_.display_path(pointer);
    std::string message;
    // NOTE: a quoted number ("16") reads like 16 in a message; say that it is a string.
    const std::string got =
        (v.is_string() && s != nullptr &&
                 (s->contains("const") ? !(*s)["const"].is_string() : !schema_.admits_type(s, v))
             ? "the string "
             : "") +
        show_value(v);
    if (s != nullptr && s->contains("const")) {
      message = path + " must be " + show_schema_value((*s)["const"]) + ", got " + got;
    } else if (s != nullptr && s->contains("enum") && kinds.count(IssueKind::kType) == 0 &&
               v.is_string()) {
      std::vector<std::string> choices;
      for (const Schema& e : (*s)["enum"]) {
        if (e.is_string()) choices.push_back(e.get<std::string>());
      }
      message = path + " " + show_value(v) + " is not one of " + SchemaView::enum_list(*s) +
                did_you_mean(v.get<std::string>(), choices);
    } else {
      message = path + " must be " + schema_.describe(s) + ", got " + got;
    }
    add(pointer, doc_.value_at(pointer), message);
  }

  // valijson names only the first unknown key of a mapping; every one gets its own diagnostic.
  void report_unknown_keys(const std::string& pointer, const Schema* s, const Issue& issue) {
    std::vector<std::string> allowed;
    bool closed = s != nullptr && s->contains("additionalProperties") &&
                  (*s)["additionalProperties"] == false;
    if (!closed) {
      const std::string key = pointer + "/" + escape_pointer_token(issue.detail);
      add(key, doc_.key_at(key), "unknown key '" + issue.detail + "'" + in(pointer));
      return;
    }
    if (s->contains("properties")) {
      for (const auto& item : (*s)["properties"].items()) allowed.push_back(item.key());
    }
    for (const std::string& name : doc_.keys_in_order(pointer)) {
      if (std::find(allowed.begin(), allowed.end(), name) != allowed.end()) continue;
      if (schema_.member_schema(*s, name) != nullptr) continue;  // a patternProperties match
      const std::string key = pointer + "/" + escape_pointer_token(name);
      add(key, doc_.key_at(key),
          "unknown key '" + name + "'" + in(pointer) + " (allowed: " + join(allowed, ", ") + ")" +
              did_you_mean(name, allowed));
    }
  }

  // NOTE: valijson 1.0 checks propertyNames without saying which name failed (it only reports
  // the mapping's parent as failed), so the names of a failed mapping are checked here against
  // the propertyNames pattern to point at each offending key.
  void check_property_names(const std::string& pointer) {
    const Json* v = value(pointer);
    if (v == nullptr || !v->is_object()) return;
    const Schema* s = schema_.effective(schema_at(pointer), *v);
    if (s == nullptr || !s->is_object() || !s->contains("propertyNames")) return;
    const Schema* names = schema_.resolve(&(*s)["propertyNames"]);
    if (names == nullptr || !names->contains("pattern")) return;
    const std::string pattern = (*names)["pattern"].get<std::string>();
    const std::regex re(pattern);
    const std::string noun = names->contains("title")
                                 ? (*names)["title"].get<std::string>()
                                 : "key in " + doc_.display_path(pointer);
    for (const std::string& name : doc_.keys_in_order(pointer)) {
      if (std::regex_search(name, re)) continue;
      const std::string key = pointer + "/" + escape_pointer_token(name);
      add(key, doc_.key_at(key), noun + " '" + name + "' must match " + display_pattern(pattern));
    }
  }

  const YamlDocument& doc_;
  const SchemaView& schema_;
  const std::string& file_;
  std::vector<Diagnostic> out_;
  std::vector<std::string> reported_;  // pointers that got a diagnostic
};

}  // namespace

void check_against_schema(const YamlDocument& doc, const std::string& schema_text,
                          const std::string& file, Diagnostics& diags) {
  Json schema_json;
  Schema ordered_schema;
  valijson::Schema schema;
  try {
    schema_json = Json::parse(schema_text);
    ordered_schema = Schema::parse(schema_text);
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    valijson::adapters::NlohmannJsonAdapter schema_adapter(schema_json);
    parser.populateSchema(schema_adapter, schema);
  } catch (const std::exception& e) {
    diags.error(file, SourcePos{}, std::string("internal error: the spec schema is invalid: ") +
                                       e.what());
    return;
  }

  valijson::Validator validator(valijson::Validator::kStrongTypes);
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter target(doc.root);
  if (validator.validate(schema, target, &results)) return;

  std::vector<Issue> issues;
  for (const valijson::ValidationResults::Error& error : results) issues.push_back(classify(error));

  SchemaView view(ordered_schema);
  Reporter reporter(doc, view, file);
  reporter.report(issues);
  for (Diagnostic& d : reporter.take()) diags.add(std::move(d));
}

}  // namespace shardplan
