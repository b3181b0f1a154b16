// Semantic checks of a spec (see spec_check.h for the list).
#include "planner/spec/spec_check.h"

#include "base/input_file.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "models/graph/registry.h"
#include "planner/spec/glob.h"

namespace shardplan {

std::string axes_text(const std::vector<std::string>& axes) {
  std::string out = "[";
  for (size_t i = 0; i < axes.size(); ++i) out += (i ? ", " : "") + axes[i];
  return out + "]";
}

namespace {

std::string join(const std::vector<std::string>& items, const std::string& sep = ", ") {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

int64_t size_of(const Spec& spec, const std::string& axis) {
  for (const auto& a : spec.mesh) {
    if (a.name == axis) return a.size;
  }
  return 1;
}

// "[tp] (size 4)" or "[dp, tp] (size 2*4 = 8)".
std::string group_text(const Spec& spec, const std::vector<std::string>& axes, int64_t g) {
  std::string out = axes_text(axes) + " (size ";
  if (axes.size() > 1) {
    std::vector<std::string> sizes;
    for (const auto& a : axes) sizes.push_back(std::to_string(size_of(spec, a)));
    out += join(sizes, "*") + " = ";
  }
  return out + std::to_string(g) + ")";
}

std::string allowed_text(ModuleKind kind) {
  std::vector<std::string> names;
  for (auto m : allowed_modes(kind)) names.push_back(to_string(m));
  return join(names);
}

class SpecChecker {
 public:
  SpecChecker(const Spec& spec, const ModelGraph& graph, Diagnostics& diags)
      : spec_(spec), graph_(graph), diags_(diags) {}

  void run() {
    // NOTE: every later check multiplies axis sizes; on a mesh that is not valid they would
    // overflow or mean nothing, so they wait until the mesh is right.
    if (!check_mesh()) return;
    check_batch_axes();
    for (const auto& rule : spec_.rules) {
      if (rule.well_formed) check_rule(rule);
    }
    const auto assignment = assign_modules(spec_, graph_);
    for (const auto& a : assignment) check_module(a);
    check_request_split(assignment);
    check_tied(assignment);
    check_shadowed(assignment);
    check_idle_axes();
    check_workload();
  }

 private:
  void error(SourcePos pos, const std::string& message) {
    // Identical layers give identical messages at the same place: report each once.
    if (reported_.insert({pos.line, pos.column, message}).second) {
      diags_.error(spec_.file, pos, message);
    }
  }
  void warning(SourcePos pos, const std::string& message) {
    if (reported_.insert({pos.line, pos.column, message}).second) {
      diags_.warning(spec_.file, pos, message);
    }
  }

  bool known_axis(const std::string& name) const {
    return std::any_of(spec_.mesh.begin(), spec_.mesh.end(),
                       [&](const MeshAxisSpec& a) { return a.name == name; });
  }
  bool is_batch_axis(const std::string& name) const {
    return std::find(spec_.batch_axes.begin(), spec_.batch_axes.end(), name) !=
           spec_.batch_axes.end();
  }
  std::vector<std::string> axis_names() const {
    std::vector<std::string> names;
    for (const auto& a : spec_.mesh) names.push_back(a.name);
    return names;
  }
  std::string mesh_names() const {
    std::vector<std::string> names;
    for (const auto& a : spec_.mesh) names.push_back(a.name);
    return names.empty() ? "none" : join(names);
  }
  int64_t group_size(const std::vector<std::string>& axes) const {
    int64_t g = 1;
    for (const auto& a : axes) g *= std::max<int64_t>(size_of(spec_, a), 1);
    return g;
  }
  int64_t batch_group_size() const { return group_size(spec_.batch_axes); }

  // Sizes >= 1, and at most kMaxWorldSize ranks in all (multiplied without overflow). Returns
  // whether the mesh is valid.
  bool check_mesh() {
    bool ok = true;
    int64_t world = 1;
    std::vector<std::string> factors;
    for (const auto& a : spec_.mesh) {
      if (a.size < 1) {
        error(a.value_pos, "mesh axis '" + a.name + "' has size " + std::to_string(a.size) +
                               "; sizes must be >= 1");
        ok = false;
        continue;
      }
      factors.push_back(a.name + " " + std::to_string(a.size));
      world = a.size > kMaxWorldSize || world > kMaxWorldSize / a.size ? kMaxWorldSize + 1 : world * a.size;
    }
    if (ok && world > kMaxWorldSize) {
      error(spec_.mesh_pos, "the mesh (" + join(factors) + ") has more than " + std::to_string(kMaxWorldSize) +
                                " ranks, the most a plan may have");
      ok = false;
    }
    return ok;
  }

  // A rule that matches modules, every one of which a later rule takes: it has no effect.
  void check_shadowed(const std::vector<ModuleAssignment>& assignment) {
    for (const auto& rule : spec_.rules) {
      if (!rule.well_formed) continue;
      bool matches = false, wins = false;
      int later = -1;
      for (const auto& a : assignment) {
        if (!rule_matches(rule, *a.module)) continue;
        matches = true;
        if (a.rule == rule.index) wins = true;
        else later = std::max(later, a.rule);
      }
      if (matches && !wins && later > rule.index) {
        warning(rule.pos, "rule " + std::to_string(rule.index) + " has no effect: every module it matches takes a "
                          "later rule (the last one that matches wins; here rule " + std::to_string(later) + ")");
      }
    }
  }

  // A mesh axis that no rule splits anything over and that does not split the requests: its
  // replicas all compute the same requests with the same weights.
  void check_idle_axes() {
    for (const auto& axis : spec_.mesh) {
      if (axis.size <= 1 || is_batch_axis(axis.name)) continue;
      bool used = std::find(spec_.default_axes.begin(), spec_.default_axes.end(), axis.name) != spec_.default_axes.end();
      for (const auto& rule : spec_.rules) {
        used = used || std::find(rule.axes.begin(), rule.axes.end(), axis.name) != rule.axes.end();
        if (rule.shared_expert) {
          const auto& s = rule.shared_expert->axes;
          used = used || std::find(s.begin(), s.end(), axis.name) != s.end();
        }
      }
      if (!used) {
        warning(axis.key_pos, "mesh axis '" + axis.name + "' (size " + std::to_string(axis.size) +
                                  ") splits nothing: no rule uses it and it is not a batch axis, so its " +
                                  std::to_string(axis.size) + " replicas compute the same requests (list it in "
                                  "batch_axes to split the requests over it)");
      }
    }
  }

  // What the workload asks of the model: positions it has, images it takes.
  void check_workload() {
    const WorkloadSpec& w = spec_.workload;
    const WorkloadShape& shape = graph_.workload;
    // (The schema makes them positive and unique.)
    if (!std::is_sorted(w.graph_batch_sizes.begin(), w.graph_batch_sizes.end())) {
      std::string sizes;
      for (int64_t size : w.graph_batch_sizes) sizes += (sizes.empty() ? "" : ", ") + std::to_string(size);
      error(w.graph_sizes_pos, "workload.graph_batch_sizes [" + sizes + "] must be ascending");
    }
    if (w.images_given && w.images_per_request > 0 && shape.tokens_per_image == 0) {
      warning(w.images_pos, "workload.images_per_request applies to models with an image encoder; this " +
                                graph_.model_type + " model has none, so it is ignored");
    }
    const int64_t images = shape.tokens_per_image > 0 ? w.images_per_request * shape.tokens_per_image : 0;
    const int64_t positions = w.prompt_tokens + images + w.new_tokens;
    if (shape.max_target_positions <= 0 || positions <= shape.max_target_positions) return;
    const std::string what = "prompt_tokens " + std::to_string(w.prompt_tokens) +
                             (images > 0 ? " + image tokens " + std::to_string(images) : std::string()) +
                             " + new_tokens " + std::to_string(w.new_tokens) + " = " + std::to_string(positions) +
                             " positions, more than the model's " + std::to_string(shape.max_target_positions);
    const SourcePos pos = w.new_tokens_pos.line > 0 ? w.new_tokens_pos : w.prompt_pos;
    if (shape.learned_positions) {
      error(pos, "workload: " + what + " (its position table has no row past them)");
    } else {
      warning(pos, "workload: " + what + " (max_position_embeddings): the model runs past what it was trained for");
    }
  }

  void check_batch_axes() {
    std::set<std::string> seen;
    for (size_t i = 0; i < spec_.batch_axes.size(); ++i) {
      const auto& name = spec_.batch_axes[i];
      const SourcePos pos = i < spec_.batch_axis_pos.size() ? spec_.batch_axis_pos[i] : SourcePos{};
      if (!known_axis(name)) {
        error(pos, "batch axis '" + name + "' is not a mesh axis (mesh axes: " + mesh_names() + ")" +
                       did_you_mean(name, axis_names()));
      } else if (!seen.insert(name).second) {
        error(pos, "batch axis '" + name + "' is listed twice");
      }
    }
    const int64_t g = batch_group_size();
    if (g > 0 && spec_.workload.batch % g != 0) {
      error(spec_.workload.batch_pos,
            "workload.batch " + std::to_string(spec_.workload.batch) +
                " is not divisible by the batch axes " + group_text(spec_, spec_.batch_axes, g));
    }
  }

  void check_rule(const RuleSpec& rule) {
    // Axes: known, once each, not a batch axis for tensor.
    std::set<std::string> seen;
    for (size_t i = 0; i < rule.axes.size(); ++i) {
      const auto& name = rule.axes[i];
      const SourcePos pos = i < rule.axis_pos.size() ? rule.axis_pos[i] : rule.axes_pos;
      if (!known_axis(name)) {
        error(pos, "unknown mesh axis '" + name + "' (mesh axes: " + mesh_names() + ")" +
                       did_you_mean(name, axis_names()));
        continue;
      }
      if (!seen.insert(name).second) {
        error(pos, "axis '" + name + "' is listed twice in this rule");
        continue;
      }
      if (is_batch_axis(name) && rule.mode == ParallelMode::kTensor) {
        error(pos, "batch axis '" + name + "' cannot be used by a 'tensor' rule: requests are already split over it");
      }
    }
    if (rule.axes.empty() && rule.mode != ParallelMode::kReplicate) {
      error(rule.mode_pos, "mode '" + std::string(to_string(rule.mode)) +
                               "' needs axes: the mesh axes it splits over");
    }
    if (!rule.axes.empty() && rule.mode == ParallelMode::kReplicate) {
      warning(rule.axes_pos, "'replicate' ignores axes " + axes_text(rule.axes));
    }

    if (rule.shared_expert) check_shared_expert_rule(rule, *rule.shared_expert);

    // The mode must be allowed for every kind the rule names.
    for (ModuleKind k : rule.kinds) {
      if (!mode_allowed(k, rule.mode)) {
        error(rule.mode_pos, "mode '" + std::string(to_string(rule.mode)) +
                                 "' is not allowed for kind '" + to_string(k) +
                                 "' (allowed: " + allowed_text(k) + ")");
      }
    }

    // What it matches: modules, and (an error) blocks inside an encoder.
    int matched = 0;
    std::set<ModuleKind> bad_kinds;
    for (const Module& m : graph_.modules) {
      if (rule_matches(rule, m)) {
        ++matched;
        if (rule.kinds.empty() && !mode_allowed(m.kind, rule.mode)) bad_kinds.insert(m.kind);
        continue;
      }
      if (m.kind != ModuleKind::kEncoder || !rule.path) continue;
      for (const Module& child : m.children) {
        if (glob_match(*rule.path, child.path)) {
          error(rule.path_pos, "path '" + *rule.path + "' points inside the encoder '" + m.path +
                                   "' (it matches '" + child.path +
                                   "'); an encoder is assigned as one unit: write a rule for '" +
                                   m.path + "'");
          ++matched;  // reported already; not also "matches no module"
          break;
        }
      }
    }
    for (ModuleKind k : bad_kinds) {
      error(rule.mode_pos, "mode '" + std::string(to_string(rule.mode)) +
                               "' is not allowed for kind '" + to_string(k) + "' of the modules '" +
                               *rule.path + "' matches (allowed: " + allowed_text(k) + ")");
    }
    if (matched == 0) {
      std::string what;
      if (!rule.kinds.empty()) {
        std::vector<std::string> names;
        for (auto k : rule.kinds) names.push_back(to_string(k));
        what = "kind " + join(names, "/");
      }
      if (rule.path) what += (what.empty() ? "" : " and ") + std::string("path '") + *rule.path + "'";
      warning(rule.pos, "rule " + std::to_string(rule.index) + " (" + what +
                            ") matches no module of this " + graph_.model_type + " model");
    }
  }

  // A rule's `shared_expert`: known axes, listed once, no batch axis; tensor needs axes; under a
  // data-mode rule its axes cannot be the rule's (the tokens are split there); it must apply to
  // some MoE with a shared expert.
  void check_shared_expert_rule(const RuleSpec& rule, const SharedExpertSpec& shared) {
    std::set<std::string> seen;
    for (size_t i = 0; i < shared.axes.size(); ++i) {
      const std::string& name = shared.axes[i];
      const SourcePos pos = i < shared.axis_pos.size() ? shared.axis_pos[i] : shared.axes_pos;
      if (!known_axis(name)) {
        error(pos, "unknown mesh axis '" + name + "' (mesh axes: " + mesh_names() + ")" +
                       did_you_mean(name, axis_names()));
      } else if (!seen.insert(name).second) {
        error(pos, "axis '" + name + "' is listed twice in this shared_expert");
      } else if (is_batch_axis(name) && shared.mode == ParallelMode::kTensor) {
        error(pos, "batch axis '" + name + "' cannot be used by the shared expert's 'tensor': requests are "
                   "already split over it");
      } else if (rule.mode == ParallelMode::kData && shared.mode == ParallelMode::kTensor &&
                 std::find(rule.axes.begin(), rule.axes.end(), name) != rule.axes.end()) {
        error(pos, "the shared expert's 'tensor' over axis '" + name + "' needs the tokens whole there, but the "
                   "rule's 'data' splits them over it");
      }
    }
    if (shared.axes.empty() && shared.mode == ParallelMode::kTensor) {
      error(shared.mode_pos, "the shared expert's mode 'tensor' needs axes: the mesh axes it splits over");
    }
    if (!shared.axes.empty() && shared.mode == ParallelMode::kReplicate) {
      warning(shared.axes_pos, "the shared expert's 'replicate' ignores axes " + axes_text(shared.axes));
    }
    bool applies = false;
    for (const Module& m : graph_.modules) {
      if (m.kind == ModuleKind::kMoe && m.dims.shared_expert_intermediate > 0 && rule_matches(rule, m)) applies = true;
    }
    if (!applies) {
      warning(shared.pos, "shared_expert applies to no module: this rule matches no MoE with a shared expert in this " +
                              graph_.model_type + " model");
    }
  }

  SourcePos mode_pos(const ModuleAssignment& a) const {
    if (a.rule >= 0) return spec_.rules[a.rule].mode_pos;
    return spec_.default_pos;
  }

  // "attention 'tensor' over [tp] (size 6): "
  std::string prefix(const ModuleAssignment& a, int64_t g) const {
    return std::string(to_string(a.module->kind)) + " '" + to_string(a.mode) + "' over " +
           group_text(spec_, a.axes, g) + ": ";
  }

  void divisible(const ModuleAssignment& a, int64_t g, int64_t count, const std::string& what) {
    if (count % g != 0) {
      error(mode_pos(a), prefix(a, g) + std::to_string(count) + " " + what +
                             " are not divisible by " + std::to_string(g));
    }
  }

  void kv_heads(const ModuleAssignment& a, int64_t g, int64_t kv) {
    if (kv <= 0) return;
    if (g <= kv ? kv % g != 0 : g % kv != 0) {
      error(mode_pos(a), prefix(a, g) + std::to_string(kv) + " KV heads can be neither split nor "
                             "replicated over " + std::to_string(g) + " (" + std::to_string(g) +
                             " must divide " + std::to_string(kv) + " or be a multiple of it)");
    }
  }

  void check_module(const ModuleAssignment& a) {
    const Module& m = *a.module;
    const ModuleDims& d = m.dims;
    if (!mode_allowed(m.kind, a.mode)) {
      if (a.rule < 0) {
        error(spec_.default_pos, "defaults.mode '" + std::string(to_string(a.mode)) +
                                     "' is not allowed for kind '" + to_string(m.kind) +
                                     "' (allowed: " + allowed_text(m.kind) + ")");
      }
      return;  // reported at the rule already
    }
    if (a.has_shared_expert && a.shared_mode == ParallelMode::kTensor) {
      const int64_t sg = group_size(a.shared_axes);
      const RuleSpec* rule = a.rule >= 0 ? &spec_.rules[a.rule] : nullptr;
      const SourcePos pos = rule && rule->shared_expert ? rule->shared_expert->mode_pos : mode_pos(a);
      if (sg > 1 && d.shared_expert_intermediate % sg != 0) {
        error(pos, "shared expert 'tensor' over " + group_text(spec_, a.shared_axes, sg) + ": " +
                       std::to_string(d.shared_expert_intermediate) + " intermediate rows are not divisible by " +
                       std::to_string(sg));
      }
    }
    const int64_t g = group_size(a.axes);
    if (g <= 1) return;
    switch (a.mode) {
      case ParallelMode::kReplicate:
        return;
      case ParallelMode::kTensor:
        switch (m.kind) {
          case ModuleKind::kAttention:
            divisible(a, g, d.heads, "heads");
            kv_heads(a, g, d.kv_heads);
            return;
          case ModuleKind::kCrossAttention:
            divisible(a, g, d.heads, "heads");
            kv_heads(a, g, d.kv_heads);
            return;
          case ModuleKind::kMlp:
          case ModuleKind::kMoe:
            divisible(a, g, d.intermediate, "intermediate rows");
            return;
          case ModuleKind::kEmbedding:
          case ModuleKind::kLmHead:
            divisible(a, g, d.vocab, "vocabulary rows");
            return;
          case ModuleKind::kProjector:
            divisible(a, g, d.intermediate, "projector rows");
            return;
          case ModuleKind::kEncoder:
            divisible(a, g, d.heads, "encoder heads");
            divisible(a, g, d.intermediate, "encoder intermediate rows");
            return;
        }
        return;
      case ParallelMode::kExpert:
        divisible(a, g, d.experts, "experts");
        return;
      case ParallelMode::kData:
        return;  // requests per rank: check_request_split, over the whole stream
    }
  }

  // Requests stay whole: follow the axes the text stream's requests are split over (batch axes,
  // then every data-parallel module adds its axes, a tensor-parallel one gathers its axes back;
  // replicate and expert keep the split) and check that the batch divides over them wherever a
  // data-parallel module computes. A data split carries over into later modules, so the splits
  // of consecutive data-parallel modules multiply.
  void check_request_split(const std::vector<ModuleAssignment>& assignment) {
    const int64_t bg = batch_group_size();
    if (bg <= 0 || spec_.workload.batch % bg != 0) return;  // reported at batch_axes
    std::vector<std::string> split = spec_.batch_axes;
    std::string carried_from;  // the earlier module whose data split is still in effect
    for (const auto& a : assignment) {
      const Module& m = *a.module;
      if (m.stream != Stream::kText || !mode_allowed(m.kind, a.mode)) continue;
      if (a.mode == ParallelMode::kTensor) {
        for (const auto& x : a.axes) split.erase(std::remove(split.begin(), split.end(), x), split.end());
        carried_from.clear();
        continue;
      }
      if (a.mode != ParallelMode::kData) continue;
      std::vector<std::string> before = split;
      for (const auto& x : a.axes) {
        if (!known_axis(x)) return;  // reported at the rule
        if (std::find(split.begin(), split.end(), x) == split.end()) split.push_back(x);
      }
      const int64_t g = group_size(split) / bg;
      const int64_t per_group = spec_.workload.batch / bg;
      if (g > 1 && per_group % g != 0) {
        std::string where = "workload.batch " + std::to_string(spec_.workload.batch);
        if (bg > 1) where += " / batch axes " + std::to_string(bg);
        std::string message = prefix(a, group_size(a.axes)) + std::to_string(per_group) +
                              " requests (" + where + ") are not divisible by " +
                              std::to_string(g);
        if (g != group_size(a.axes) && !carried_from.empty()) {
          message += " (the split over " + axes_text(before) + " from '" + carried_from +
                     "' carries over, so requests are split over " + axes_text(split) + ")";
        }
        error(mode_pos(a), message);
      }
      carried_from = m.path;
    }
  }

  void check_tied(const std::vector<ModuleAssignment>& assignment) {
    if (!graph_.tied_lm_head_to) return;
    const ModuleAssignment* emb = nullptr;
    const ModuleAssignment* head = nullptr;
    for (const auto& a : assignment) {
      for (const auto& p : a.module->params) {
        if (p.name == *graph_.tied_lm_head_to) emb = &a;
      }
      if (a.module->kind == ModuleKind::kLmHead) head = &a;
    }
    if (!emb || !head) return;
    auto split = [](const ModuleAssignment& a) {
      return a.mode == ParallelMode::kTensor ? a.axes : std::vector<std::string>{};
    };
    if (split(*emb) != split(*head)) {
      const SourcePos pos = head->rule >= 0 ? spec_.rules[head->rule].mode_pos : mode_pos(*emb);
      error(pos, std::string("lm_head '") + head->module->path + "' is tied to '" +
                     *graph_.tied_lm_head_to + "' but is '" + to_string(head->mode) + "' over " +
                     axes_text(head->axes) + " while the embedding is '" + to_string(emb->mode) +
                     "' over " + axes_text(emb->axes) +
                     "; a tied tensor has one layout: give both the same mode and axes");
    }
  }

  const Spec& spec_;
  const ModelGraph& graph_;
  Diagnostics& diags_;
  std::set<std::tuple<int, int, std::string>> reported_;
};

}  // namespace

void check_spec(const Spec& spec, const ModelGraph& graph, Diagnostics& diags) {
  SpecChecker(spec, graph, diags).run();
}

CheckOutcome check_spec_file(const std::string& file, Diagnostics& diags, CheckedSpec* out) {
  std::string error;
  const std::optional<std::string> text = read_input_file(file, kMaxSpecBytes, "a spec", &error);
  if (!text) {
    diags.error(file, {}, "cannot read the spec file: " + error);
    return CheckOutcome::kIoError;
  }
  return check_spec_text(*text, file, diags, out);
}

CheckOutcome check_spec_text(const std::string& text, const std::string& file, Diagnostics& diags,
                             CheckedSpec* out) {
  auto spec = spec_from_text(text, file, diags);
  if (!spec) return CheckOutcome::kInvalid;
  if (!spec->model_ok) return CheckOutcome::kInvalid;  // the schema reported it

  // The config: unreadable is an I/O error (2); readable but unusable is an invalid spec (1).
  std::string error;
  const std::optional<std::string> config_text =
      read_input_file(spec->config_path, kMaxConfigBytes, "a config", &error);
  if (!config_text) {
    diags.error(file, spec->config_pos,
                "cannot read model.config '" + spec->config_path_as_written + "' (resolved to '" +
                    spec->config_path + "'): " + error);
    return CheckOutcome::kIoError;
  }
  nlohmann::json config;
  try {
    config = parse_json_limited(*config_text);
  } catch (const std::exception& e) {
    diags.error(file, spec->config_pos,
                "model.config '" + spec->config_path_as_written + "' is not valid JSON: " + e.what());
    return CheckOutcome::kIoError;
  }
  if (!config.is_object()) {
    diags.error(file, spec->config_pos,
                "model.config '" + spec->config_path_as_written + "' is not a JSON object (it is " +
                    config.type_name() + ")");
    return CheckOutcome::kIoError;
  }
  ModelGraph graph;
  try {
    graph = build_model_graph(config);
  } catch (const ConfigError& e) {
    diags.error(file, spec->config_pos,
                "model.config '" + spec->config_path_as_written + "': " + e.what());
    return CheckOutcome::kInvalid;
  }

  check_spec(*spec, graph, diags);
  if (diags.has_errors()) return CheckOutcome::kInvalid;
  if (out) {
    out->spec = std::move(*spec);
    out->graph = std::move(graph);
    // The assignment points into out->graph, so it is made after the move.
    out->assignment = assign_modules(out->spec, out->graph);
  }
  return CheckOutcome::kValid;
}

}  // namespace shardplan
