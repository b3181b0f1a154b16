// Reading spec values out of a schema-checked YAML document.
#include "planner/spec/spec.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "planner/spec/schema_check.h"

namespace shardplan {

extern const char* const kSpecSchemaJson;

const char* to_string(ParallelMode mode) {
  switch (mode) {
    case ParallelMode::kReplicate: return "replicate";
    case ParallelMode::kTensor: return "tensor";
    case ParallelMode::kData: return "data";
    case ParallelMode::kExpert: return "expert";
  }
  return "?";
}

std::optional<ParallelMode> parse_parallel_mode(const std::string& text) {
  if (text == "replicate") return ParallelMode::kReplicate;
  if (text == "tensor") return ParallelMode::kTensor;
  if (text == "data") return ParallelMode::kData;
  if (text == "expert") return ParallelMode::kExpert;
  return std::nullopt;
}

int64_t Spec::world_size() const {
  // NOTE: saturates instead of overflowing: it is asked (for the default batch) before check_spec
  // refuses a mesh of more than kMaxWorldSize ranks such as {dp: 2^32, tp: 2^32}.
  int64_t w = 1;
  for (const auto& a : mesh) {
    if (__builtin_mul_overflow(w, a.size, &w)) return std::numeric_limits<int64_t>::max();
  }
  return w;
}

namespace {

std::string resolve_relative(const std::string& spec_file, const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p(path);
  if (p.is_absolute()) return path;
  fs::path base = fs::path(spec_file).parent_path();
  return (base / p).lexically_normal().string();
}

std::vector<std::string> string_list(const nlohmann::json& j) {
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& e : j) {
    if (e.is_string()) out.push_back(e.get<std::string>());
  }
  return out;
}

}  // namespace

Spec spec_from_document(const YamlDocument& doc, const std::string& file) {
  const nlohmann::json& root = doc.root;
  Spec spec;
  spec.file = file;
  if (root.contains("name") && root["name"].is_string()) spec.name = root["name"];

  if (root.contains("hardware") && root["hardware"].is_string()) {
    const std::string h = root["hardware"];
    // A name without a folder or a YAML extension is a preset; anything else a file.
    const auto ends_with = [&](const std::string& tail) {
      return h.size() > tail.size() && h.compare(h.size() - tail.size(), tail.size(), tail) == 0;
    };
    const bool file_like = h.find('/') != std::string::npos || ends_with(".yaml") || ends_with(".yml");
    spec.hardware = file_like ? resolve_relative(file, h) : h;
    spec.hardware_pos = doc.value_at("/hardware");
  }
  if (root.contains("model") && root["model"].is_object()) {
    const auto& m = root["model"];
    spec.model_ok = m.contains("config") && m["config"].is_string();
    if (spec.model_ok) {
      spec.config_path_as_written = m["config"];
      spec.config_path = resolve_relative(file, spec.config_path_as_written);
      spec.config_pos = doc.value_at("/model/config");
    }
    if (m.contains("checkpoint") && m["checkpoint"].is_string()) {
      spec.checkpoint_path = resolve_relative(file, m["checkpoint"].get<std::string>());
      spec.checkpoint_pos = doc.value_at("/model/checkpoint");
    }
    if (m.contains("dtype") && m["dtype"].is_string()) {
      if (auto d = parse_dtype(m["dtype"])) spec.dtype = *d;
    }
  }

  spec.mesh_pos = doc.key_at("/mesh");
  if (root.contains("mesh") && root["mesh"].is_object()) {
    // NOTE: nlohmann::json sorts object keys; the mesh's axis order is the document order, which
    // the position map keeps.
    std::vector<std::pair<SourcePos, MeshAxisSpec>> axes;
    for (auto it = root["mesh"].begin(); it != root["mesh"].end(); ++it) {
      MeshAxisSpec a;
      a.name = it.key();
      a.size = it.value().is_number_integer() ? it.value().get<int64_t>() : 1;
      const std::string ptr = "/mesh/" + it.key();
      a.key_pos = doc.key_at(ptr);
      a.value_pos = doc.value_at(ptr);
      axes.emplace_back(a.key_pos, a);
    }
    std::stable_sort(axes.begin(), axes.end(), [](const auto& x, const auto& y) {
      return std::make_pair(x.first.line, x.first.column) < std::make_pair(y.first.line, y.first.column);
    });
    for (auto& [pos, a] : axes) spec.mesh.push_back(a);
  }

  if (root.contains("batch_axes")) {
    spec.batch_axes = string_list(root["batch_axes"]);
    for (size_t i = 0; i < spec.batch_axes.size(); ++i) {
      spec.batch_axis_pos.push_back(doc.value_at("/batch_axes/" + std::to_string(i)));
    }
  }

  if (root.contains("defaults") && root["defaults"].is_object() &&
      root["defaults"].contains("mode") && root["defaults"]["mode"].is_string()) {
    if (auto m = parse_parallel_mode(root["defaults"]["mode"])) spec.default_mode = *m;
    spec.default_pos = doc.value_at("/defaults/mode");
    if (root["defaults"].contains("axes")) spec.default_axes = string_list(root["defaults"]["axes"]);
  }

  if (root.contains("modules") && root["modules"].is_array()) {
    const auto& rules = root["modules"];
    for (size_t i = 0; i < rules.size(); ++i) {
      const auto& r = rules[i];
      if (!r.is_object()) continue;
      const std::string ptr = "/modules/" + std::to_string(i);
      RuleSpec rule;
      rule.index = static_cast<int>(i);
      rule.pos = doc.value_at(ptr);
      if (r.contains("kind")) {
        rule.kind_pos = doc.value_at(ptr + "/kind");
        std::vector<std::string> names =
            r["kind"].is_string() ? std::vector<std::string>{r["kind"].get<std::string>()}
                                  : string_list(r["kind"]);
        for (const auto& n : names) {
          if (auto k = parse_module_kind(n)) {
            rule.kinds.push_back(*k);
          } else {
            rule.well_formed = false;
          }
        }
        if (names.empty()) rule.well_formed = false;
      }
      if (r.contains("path") && r["path"].is_string()) {
        rule.path = r["path"].get<std::string>();
        rule.path_pos = doc.value_at(ptr + "/path");
      }
      rule.mode_pos = doc.value_at(ptr + "/mode");
      std::optional<ParallelMode> mode;
      if (r.contains("mode") && r["mode"].is_string()) mode = parse_parallel_mode(r["mode"]);
      if (mode) {
        rule.mode = *mode;
      } else {
        rule.well_formed = false;
      }
      if (!r.contains("kind") && !r.contains("path")) rule.well_formed = false;
      if (r.contains("path") && !r["path"].is_string()) rule.well_formed = false;
      if (r.contains("axes") && !r["axes"].is_array()) rule.well_formed = false;
      if (r.contains("axes")) {
        rule.axes = string_list(r["axes"]);
        rule.axes_pos = doc.value_at(ptr + "/axes");
        for (size_t k = 0; k < rule.axes.size(); ++k) {
          rule.axis_pos.push_back(doc.value_at(ptr + "/axes/" + std::to_string(k)));
        }
      }
      if (r.contains("shared_expert")) {
        const auto& se = r["shared_expert"];
        SharedExpertSpec shared;
        shared.pos = doc.value_at(ptr + "/shared_expert");
        shared.mode_pos = doc.value_at(ptr + "/shared_expert/mode");
        std::optional<ParallelMode> shared_mode;
        if (se.is_object() && se.contains("mode") && se["mode"].is_string()) {
          shared_mode = parse_parallel_mode(se["mode"]);
        }
        if (shared_mode) {
          shared.mode = *shared_mode;
        } else {
          rule.well_formed = false;
        }
        if (se.is_object() && se.contains("axes")) {
          if (!se["axes"].is_array()) rule.well_formed = false;
          shared.axes = string_list(se["axes"]);
          shared.axes_pos = doc.value_at(ptr + "/shared_expert/axes");
          for (size_t k = 0; k < shared.axes.size(); ++k) {
            shared.axis_pos.push_back(doc.value_at(ptr + "/shared_expert/axes/" + std::to_string(k)));
          }
        }
        rule.shared_expert = std::move(shared);
      }
      spec.rules.push_back(std::move(rule));
    }
  }

  if (root.contains("workload") && root["workload"].is_object()) {
    const auto& w = root["workload"];
    auto get = [&](const char* key, int64_t& out) {
      if (w.contains(key) && w[key].is_number_integer()) out = w[key].get<int64_t>();
    };
    get("batch", spec.workload.batch);
    get("prompt_tokens", spec.workload.prompt_tokens);
    get("new_tokens", spec.workload.new_tokens);
    get("images_per_request", spec.workload.images_per_request);
    spec.workload.batch_pos = doc.value_at("/workload/batch");
    spec.workload.prompt_pos = doc.value_at("/workload/prompt_tokens");
    spec.workload.new_tokens_pos = doc.value_at("/workload/new_tokens");
    spec.workload.images_pos = doc.value_at("/workload/images_per_request");
    spec.workload.batch_given = w.contains("batch");
    spec.workload.images_given = w.contains("images_per_request");
    if (w.contains("graph_batch_sizes") && w["graph_batch_sizes"].is_array()) {
      for (const auto& size : w["graph_batch_sizes"]) {
        if (size.is_number_integer()) spec.workload.graph_batch_sizes.push_back(size.get<int64_t>());
      }
      spec.workload.graph_sizes_pos = doc.value_at("/workload/graph_batch_sizes");
    }
  }
  // NOTE: without workload.batch, one request per rank: the world size divides by every group.
  if (!spec.workload.batch_given) spec.workload.batch = std::max<int64_t>(spec.world_size(), 1);
  return spec;
}

std::optional<Spec> spec_from_text(const std::string& text, const std::string& file, Diagnostics& diags) {
  auto doc = parse_yaml_document(text, file, diags);
  if (!doc) return std::nullopt;
  check_against_schema(*doc, kSpecSchemaJson, file, diags);
  // NOTE: the semantic checks run even after schema errors (on what could be read), so that one
  // run reports every problem; parts the schema rejected are marked and skipped there.
  return spec_from_document(*doc, file);
}

}  // namespace shardplan
