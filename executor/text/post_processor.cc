// Post-processors of one sequence (see post_processor.h).
#include "executor/text/post_processor.h"

#include "executor/text/json_fields.h"
#include "executor/text/tokenizer_error.h"

namespace shardplan {
namespace {

// A [token, id] pair of RobertaProcessing / BertProcessing ("cls": ["<s>", 0]).
int64_t pair_id(const nlohmann::json& value, const char* key, const std::string& path) {
  const nlohmann::json& pair = json_member(value, key, path);
  if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !json_is_index(pair[1])) {
    throw_malformed(path + "." + key, "expected [\"token\", id], got " + pair.dump());
  }
  return static_cast<int64_t>(pair[1].get<uint64_t>());
}

}  // namespace

PostProcessor PostProcessor::parse(const nlohmann::json& value, const std::string& path) {
  PostProcessor processor;
  if (!value.is_null()) processor.add(value, path);
  return processor;
}

void PostProcessor::add(const nlohmann::json& value, const std::string& path) {
  // Checks: the single template names sequence A once and only special tokens that
  // "special_tokens" defines; Roberta/Bert's cls and sep are [token, id] pairs.
  const std::string type = json_type(value, path);
  if (type == "Sequence") {
    const nlohmann::json& list = json_member(value, "processors", path);
    if (!list.is_array()) throw_malformed(path + ".processors", "expected an array");
    for (size_t i = 0; i < list.size(); ++i) add(list[i], path + ".processors[" + std::to_string(i) + "]");
    return;
  }
  if (type == "ByteLevel") return;
  Template t;
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    t.before.push_back(pair_id(value, "cls", path));
    t.after.push_back(pair_id(value, "sep", path));
  } else if (type == "TemplateProcessing") {
    const nlohmann::json& single = json_member(value, "single", path);
    const nlohmann::json& specials = json_member(value, "special_tokens", path);
    if (!single.is_array()) throw_malformed(path + ".single", "expected an array of pieces");
    bool seen_sequence = false;
    for (size_t i = 0; i < single.size(); ++i) {
      const std::string where = path + ".single[" + std::to_string(i) + "]";
      const nlohmann::json& piece = single[i];
      if (piece.is_object() && piece.contains("Sequence")) {
        const std::string id = json_string(piece["Sequence"], "id", where + ".Sequence");
        if (id != "A") throw_malformed(where, "the single template may only use sequence A, got " + id);
        if (seen_sequence) throw_unsupported(where, "a single template with sequence A twice");
        seen_sequence = true;
      } else if (piece.is_object() && piece.contains("SpecialToken")) {
        const std::string name = json_string(piece["SpecialToken"], "id", where + ".SpecialToken");
        if (!specials.is_object() || !specials.contains(name)) {
          throw_malformed(where, "the special token '" + name + "' is not in special_tokens");
        }
        const nlohmann::json& ids = json_member(specials[name], "ids", path + ".special_tokens." + name);
        if (!ids.is_array()) throw_malformed(path + ".special_tokens." + name + ".ids", "expected an array of ids");
        for (const nlohmann::json& id : ids) {
          if (!json_is_index(id)) {
            throw_malformed(path + ".special_tokens." + name + ".ids", "expected ids, got " + id.dump());
          }
          (seen_sequence ? t.after : t.before).push_back(static_cast<int64_t>(id.get<uint64_t>()));
        }
      } else {
        throw_malformed(where, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}, got " + piece.dump());
      }
    }
    if (!seen_sequence) throw_unsupported(path + ".single", "a single template without $A");
  } else {
    throw_unsupported(path, "the post-processor '" + type +
                                "' (supported: TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel, "
                                "Sequence)");
  }
  templates_.push_back(std::move(t));
}

std::vector<int64_t> PostProcessor::process(std::vector<int64_t> ids, bool add_special_tokens) const {
  if (!add_special_tokens) return ids;
  for (const Template& t : templates_) {
    if (t.before.empty() && t.after.empty()) continue;
    std::vector<int64_t> out;
    out.reserve(t.before.size() + ids.size() + t.after.size());
    out.insert(out.end(), t.before.begin(), t.before.end());
    out.insert(out.end(), ids.begin(), ids.end());
    out.insert(out.end(), t.after.begin(), t.after.end());
    ids.swap(out);
  }
  return ids;
}

}  // namespace shardplan
