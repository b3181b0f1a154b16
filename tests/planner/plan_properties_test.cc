// Property tests of whole plans over many meshes (1..64 ranks, 1..3 axes, size-1 axes included)
// and every shipped model config (models/configs/*.json, real and tiny), under structured and
// seeded-random mode assignments. Specs are built in memory and go through check_spec; the
// combinations it rejects (sizes that do not divide) are skipped and counted, and each test
// asserts that enough plans were really checked.
//
// Properties (STYLE.md "Tests"):
//  (a) the shards of every tensor tile it: every element is held by exactly
//      replication_factor ranks, within each replica group exactly once (a KV head replicated
//      over a larger group: g / units times), slices lie in bounds, split only along the split
//      dimension, on unit (head / row) boundaries, in group-rank order;
//  (b) per-rank weight bytes are the bytes of the rank's slices, and their sum over ranks is the
//      sum over tensors of bytes x replication factor;
//  (c) rank -> coordinates -> rank is the identity on the plan's mesh;
//  (d) a derived collective applied to its source layout gives its target layout: the layouts
//      are re-derived here from spec-format.md §3 alone (what each mode needs and produces), the
//      collectives of plan.comms are applied to them one by one in order, and every module's
//      input and output layout, every op, its axes, its place (after / before) and its bytes
//      must agree;
//  (e) every collective's groups partition all ranks, each group of the product of its axes'
//      sizes, as Mesh::groups lists them;
//  (f) no collective runs over a batch axis but an expert MoE's all_to_all pair (its tokens, split
//      over the axis, reach the experts there): with batch_axes [dp] on {dp: 2, tp: 4}, every
//      other group lies inside a tp group.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "models/graph/model_graph.h"
#include "models/graph/registry.h"
#include "planner/plan/collectives.h"
#include "planner/plan/layout.h"
#include "planner/plan/mesh.h"
#include "planner/plan/plan.h"
#include "planner/plan/shard.h"
#include "planner/spec/assignment.h"
#include "planner/spec/diagnostic.h"
#include "planner/spec/spec.h"
#include "planner/spec/spec_check.h"

namespace shardplan {
namespace {

using S = AxisState;

// 2^6 * 3^2 * 5: divisible by every batch / data group the meshes below make (7 aside).
constexpr int64_t kBatch = 2880;
constexpr int64_t kPromptTokens = 40;  // + kNewTokens within tiny-whisper's 64 positions
constexpr int64_t kNewTokens = 16;
constexpr DType kDType = DType::kBFloat16;

// ---------------------------------------------------------------------------------------------
// The cases: models, meshes, mode assignments.

struct ModelCase {
  std::string name;  // file stem: "llama-3-8b", "tiny-mixtral", ...
  std::string config_path;
  ModelGraph graph;
  bool tiny = false;
  bool moe = false;
};

const std::vector<ModelCase>& shipped_models() {
  static const std::vector<ModelCase> models = [] {
    std::vector<std::string> paths;
    for (const auto& e :
         std::filesystem::directory_iterator(SHARDPLAN_SOURCE_DIR "/models/configs")) {
      if (e.path().extension() == ".json") paths.push_back(e.path().string());
    }
    std::sort(paths.begin(), paths.end());
    std::vector<ModelCase> out;
    for (const auto& p : paths) {
      ModelCase m;
      m.name = std::filesystem::path(p).stem().string();
      m.config_path = p;
      m.graph = load_model_graph(p);
      m.tiny = m.name.rfind("tiny-", 0) == 0;
      for (const Module& mod : m.graph.modules) m.moe |= mod.kind == ModuleKind::kMoe;
      out.push_back(std::move(m));
    }
    return out;
  }();
  return models;
}

using MeshShape = std::vector<MeshAxis>;

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::string describe(const MeshShape& mesh) {
  std::string out = "{";
  for (size_t i = 0; i < mesh.size(); ++i) {
    out += (i ? ", " : "") + mesh[i].name + ": " + std::to_string(mesh[i].size);
  }
  return out + "}";
}

// Every ordered factorization of each world size into 1..3 axes x, y, z (size-1 axes included).
std::vector<MeshShape> meshes_for(const std::vector<int64_t>& worlds) {
  std::vector<MeshShape> out;
  for (int64_t w : worlds) {
    for (int n = 1; n <= 3; ++n) {
      std::vector<int64_t> sizes;
      auto rec = [&](auto&& self, int64_t left) -> void {
        if (static_cast<int>(sizes.size()) == n - 1) {
          sizes.push_back(left);
          MeshShape mesh;
          for (int i = 0; i < n; ++i) mesh.push_back({std::string(1, static_cast<char>('x' + i)), sizes[i]});
          out.push_back(mesh);
          sizes.pop_back();
          return;
        }
        for (int64_t s = 1; s <= left; ++s) {
          if (left % s) continue;
          sizes.push_back(s);
          self(self, left / s);
          sizes.pop_back();
        }
      };
      rec(rec, w);
    }
  }
  return out;
}

struct RuleCase {
  std::vector<ModuleKind> kinds;  // empty: any
  std::string path;               // empty: any
  ParallelMode mode = ParallelMode::kReplicate;
  std::vector<std::string> axes;
};

struct Scenario {
  std::string label;
  std::vector<std::string> batch_axes;
  std::vector<RuleCase> rules;
  int64_t batch = kBatch;  // workload.batch
};

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + v[i];
  return out;
}

const std::vector<ModuleKind> kAllKinds = {
    ModuleKind::kEmbedding, ModuleKind::kAttention, ModuleKind::kCrossAttention,
    ModuleKind::kMlp,       ModuleKind::kMoe,       ModuleKind::kEncoder,
    ModuleKind::kProjector, ModuleKind::kLmHead};
const std::vector<ModuleKind> kDenseKinds = {
    ModuleKind::kEmbedding, ModuleKind::kAttention, ModuleKind::kCrossAttention,
    ModuleKind::kMlp,       ModuleKind::kEncoder,   ModuleKind::kProjector,
    ModuleKind::kLmHead};

Scenario with_minimal_batch(const MeshShape& mesh, Scenario sc);

// Whole-model assignments over the mesh's axes: every kind under one mode, batch axes with
// tensor / data, and the expert layouts of MoE serving.
std::vector<Scenario> structured_scenarios(const ModelCase& model, const MeshShape& mesh) {
  std::vector<std::string> names;
  for (const auto& a : mesh) names.push_back(a.name);
  std::vector<Scenario> out;
  auto rule = [](std::vector<ModuleKind> kinds, ParallelMode mode, std::vector<std::string> axes) {
    return RuleCase{std::move(kinds), "", mode, std::move(axes)};
  };
  out.push_back({"replicate", {}, {}});
  for (const auto& a : names) {
    out.push_back({"tensor[" + a + "]", {}, {rule(kAllKinds, ParallelMode::kTensor, {a})}});
    out.push_back({"data[" + a + "]", {}, {rule(kAllKinds, ParallelMode::kData, {a})}});
    // Attention data-parallel, the rest tensor-parallel over the same axis: gathers and
    // reduce-scatters at every boundary.
    out.push_back({"attention data[" + a + "], rest tensor[" + a + "]",
                   {},
                   {rule(kAllKinds, ParallelMode::kTensor, {a}),
                    rule({ModuleKind::kAttention}, ParallelMode::kData, {a})}});
    if (model.moe) {
      out.push_back({"expert[" + a + "], rest tensor[" + a + "]",
                     {},
                     {rule(kDenseKinds, ParallelMode::kTensor, {a}),
                      rule({ModuleKind::kMoe}, ParallelMode::kExpert, {a})}});
      out.push_back({"expert[" + a + "], attention data[" + a + "]",
                     {},
                     {rule({ModuleKind::kAttention}, ParallelMode::kData, {a}),
                      rule({ModuleKind::kMoe}, ParallelMode::kExpert, {a})}});
    }
    for (const auto& b : names) {
      if (a == b) continue;
      out.push_back({"tensor[" + a + "," + b + "]", {}, {rule(kAllKinds, ParallelMode::kTensor, {a, b})}});
      out.push_back({"batch[" + a + "] tensor[" + b + "]",
                     {a},
                     {rule(kAllKinds, ParallelMode::kTensor, {b})}});
      // Two data splits in a row, with the smallest batch each allows alone.
      out.push_back(with_minimal_batch(
          mesh, {"attention data[" + a + "], mlp data[" + b + "]",
                 {},
                 {rule({ModuleKind::kAttention}, ParallelMode::kData, {a}),
                  rule({ModuleKind::kMlp, ModuleKind::kMoe}, ParallelMode::kData, {b})}}));
      out.push_back({"mlp data[" + a + "], rest tensor[" + b + "]",
                     {},
                     {rule(kAllKinds, ParallelMode::kTensor, {b}),
                      rule({ModuleKind::kMlp, ModuleKind::kMoe}, ParallelMode::kData, {a})}});
      if (model.moe) {
        out.push_back({"batch[" + a + "] expert[" + b + "] rest tensor[" + b + "]",
                       {a},
                       {rule(kDenseKinds, ParallelMode::kTensor, {b}),
                        rule({ModuleKind::kMoe}, ParallelMode::kExpert, {b})}});
        // Tokens split over a by data-parallel attention, replicated over b: all_to_all over a,
        // partial over b.
        out.push_back({"attention data[" + a + "] expert[" + a + "," + b + "]",
                       {},
                       {rule({ModuleKind::kAttention}, ParallelMode::kData, {a}),
                        rule({ModuleKind::kMoe}, ParallelMode::kExpert, {a, b})}});
      }
    }
  }
  return out;
}

int64_t axes_product(const MeshShape& mesh, const std::vector<std::string>& axes) {
  int64_t g = 1;
  for (const auto& a : axes) {
    for (const auto& m : mesh) {
      if (m.name == a) g *= m.size;
    }
  }
  return g;
}

// A generator's guess (not the verdict: check_spec decides) of whether a module can take `mode`
// over a group of g, so that random assignments mostly pass.
bool likely_divides(const Module& m, ParallelMode mode, int64_t g, int64_t requests) {
  const ModuleDims& d = m.dims;
  auto div = [g](int64_t n) { return n <= 0 || n % g == 0; };
  switch (mode) {
    case ParallelMode::kReplicate: return true;
    case ParallelMode::kData: return m.kind == ModuleKind::kEncoder || requests % g == 0;
    case ParallelMode::kExpert: return d.experts > 0 && div(d.experts);
    case ParallelMode::kTensor:
      switch (m.kind) {
        case ModuleKind::kAttention:
        case ModuleKind::kCrossAttention:
          return div(d.heads) && (d.kv_heads <= 0 || (g <= d.kv_heads ? d.kv_heads % g == 0
                                                                       : g % d.kv_heads == 0));
        case ModuleKind::kMlp:
        case ModuleKind::kMoe:
        case ModuleKind::kProjector: return div(d.intermediate);
        case ModuleKind::kEmbedding:
        case ModuleKind::kLmHead: return div(d.vocab);
        case ModuleKind::kEncoder: return div(d.heads) && div(d.intermediate);
      }
  }
  return false;
}

// One rule per module (an exact path), each a random allowed mode over a random ordered subset
// of the non-batch axes; a random subset of the axes are batch axes. A tied lm_head takes its
// embedding's choice.
// `batch_axes`, when given, fixes the batch axes instead.
Scenario random_scenario(const ModelCase& model, const MeshShape& mesh, uint32_t seed,
                         const std::vector<std::string>* batch_axes = nullptr) {
  std::mt19937 rng(seed);
  auto pick = [&rng](size_t n) { return static_cast<size_t>(rng() % n); };
  Scenario sc;
  sc.label = "random seed " + std::to_string(seed);
  std::vector<std::string> free_axes;
  for (const auto& a : mesh) {
    if (batch_axes ? contains(*batch_axes, a.name) : pick(3) == 0) {
      sc.batch_axes.push_back(a.name);
    } else {
      free_axes.push_back(a.name);
    }
  }
  const int64_t requests = kBatch / axes_product(mesh, sc.batch_axes);
  std::optional<RuleCase> embedding_rule;
  for (const Module& m : model.graph.modules) {
    RuleCase r;
    r.path = m.path;
    if (m.kind == ModuleKind::kLmHead && model.graph.tied_lm_head_to && embedding_rule) {
      r.mode = embedding_rule->mode;
      r.axes = embedding_rule->axes;
      sc.rules.push_back(r);
      continue;
    }
    const auto modes = allowed_modes(m.kind);
    r.mode = modes[pick(modes.size())];
    if (r.mode != ParallelMode::kReplicate) {
      if (free_axes.empty()) {
        r.mode = ParallelMode::kReplicate;
      } else {
        std::vector<std::string> pool = free_axes;
        // An expert rule may also list batch axes (its tokens reach the experts by all_to_all).
        if (r.mode == ParallelMode::kExpert) pool.insert(pool.end(), sc.batch_axes.begin(), sc.batch_axes.end());
        std::shuffle(pool.begin(), pool.end(), rng);
        pool.resize(1 + pick(pool.size()));
        r.axes = pool;
        if (!likely_divides(m, r.mode, axes_product(mesh, r.axes), requests)) {
          r.mode = ParallelMode::kReplicate;
          r.axes.clear();
        }
      }
    }
    if (m.kind == ModuleKind::kEmbedding) embedding_rule = r;
    sc.rules.push_back(r);
  }
  return sc;
}

// The same scenario with the smallest workload.batch that check_spec's per-module rules allow:
// a multiple of the batch axes' product times each data-mode group.
Scenario with_minimal_batch(const MeshShape& mesh, Scenario sc) {
  const int64_t bg = axes_product(mesh, sc.batch_axes);
  int64_t batch = bg;
  for (const RuleCase& r : sc.rules) {
    if (r.mode == ParallelMode::kData) batch = std::lcm(batch, bg * axes_product(mesh, r.axes));
  }
  sc.batch = batch;
  sc.label += ", batch " + std::to_string(batch);
  return sc;
}

Spec make_spec(const ModelCase& model, const MeshShape& mesh, const Scenario& sc) {
  Spec spec;
  spec.file = "<" + model.name + " " + describe(mesh) + " " + sc.label + ">";
  spec.name = sc.label;
  spec.config_path = model.config_path;
  spec.config_path_as_written = model.config_path;
  spec.model_ok = true;
  spec.dtype = kDType;
  int line = 5;
  for (const auto& a : mesh) {
    MeshAxisSpec m;
    m.name = a.name;
    m.size = a.size;
    m.key_pos = {line, 3};
    m.value_pos = {line++, 7};
    spec.mesh.push_back(m);
  }
  spec.batch_axes = sc.batch_axes;
  spec.batch_axis_pos.assign(sc.batch_axes.size(), SourcePos{line++, 14});
  for (size_t i = 0; i < sc.rules.size(); ++i) {
    const RuleCase& r = sc.rules[i];
    RuleSpec rs;
    rs.index = static_cast<int>(i);
    rs.kinds = r.kinds;
    if (!r.path.empty()) rs.path = r.path;
    rs.mode = r.mode;
    rs.axes = r.axes;
    rs.pos = {line, 5};
    rs.kind_pos = rs.path_pos = {line++, 11};
    rs.mode_pos = {line++, 11};
    rs.axes_pos = {line++, 11};
    rs.axis_pos.assign(r.axes.size(), rs.axes_pos);
    spec.rules.push_back(std::move(rs));
  }
  spec.workload.batch = sc.batch;
  spec.workload.prompt_tokens = kPromptTokens;
  spec.workload.new_tokens = kNewTokens;
  spec.workload.images_per_request = 1;
  return spec;
}

// The plan, or nullptr when check_spec rejects the combination.
std::unique_ptr<Plan> plan_if_valid(const ModelCase& model, const MeshShape& mesh,
                                    const Scenario& sc) {
  Spec spec = make_spec(model, mesh, sc);
  Diagnostics diags;
  check_spec(spec, model.graph, diags);
  if (diags.has_errors()) return nullptr;
  CheckedSpec checked;
  checked.spec = std::move(spec);
  checked.graph = model.graph;
  checked.assignment = assign_modules(checked.spec, checked.graph);
  return build_plan(std::move(checked));
}

// ---------------------------------------------------------------------------------------------
// Shared helpers of the checks.

int64_t size_of(const Mesh& mesh, const std::string& axis) {
  for (const auto& a : mesh.axes()) {
    if (a.name == axis) return a.size;
  }
  return -1;
}

int64_t product(const Mesh& mesh, const std::vector<std::string>& axes) {
  int64_t g = 1;
  for (const auto& a : axes) g *= size_of(mesh, a);
  return g;
}

std::string show(const std::vector<int64_t>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + std::to_string(v[i]);
  return out + "]";
}

// Do the intervals [lo, hi) cover every point of [0, extent) exactly `times` times (and nothing
// outside it)? Interval arithmetic: a sweep over the sorted end points.
bool covers_exactly(std::vector<std::pair<int64_t, int64_t>> intervals, int64_t extent,
                    int64_t times, std::string* why) {
  std::vector<std::pair<int64_t, int>> events;
  for (const auto& [lo, hi] : intervals) {
    events.push_back({lo, +1});
    events.push_back({hi, -1});
  }
  std::sort(events.begin(), events.end());
  int64_t depth = 0, pos = 0;
  size_t i = 0;
  while (i < events.size()) {
    const int64_t x = events[i].first;
    if (x > pos && depth != times) {
      *why = "[" + std::to_string(pos) + ", " + std::to_string(x) + ") is held " +
             std::to_string(depth) + " times, expected " + std::to_string(times);
      return false;
    }
    for (; i < events.size() && events[i].first == x; ++i) depth += events[i].second;
    pos = std::max(pos, x);
  }
  if (pos < extent && times != 0) {
    *why = "[" + std::to_string(pos) + ", " + std::to_string(extent) + ") is held 0 times, expected " +
           std::to_string(times);
    return false;
  }
  if (pos > extent) {
    *why = "coverage runs to " + std::to_string(pos) + " past the extent " + std::to_string(extent);
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// (a) + (b): shards tile every tensor; weight bytes add up.

struct Placement {
  int split_dim = -1;
  std::vector<std::string> axes;  // split or expert axes
  int64_t g = 1;
  int64_t units = 0;
  int64_t rep = 1;       // ranks of a group holding the same unit (KV heads over a larger group)
  bool expert = false;
  int64_t owner = -1;    // expert: the owning group rank
  int64_t holders = 0;   // ranks holding each element
};

// Where a tensor must live, from the module's mode (spec-format.md §2) and the tensor's split
// description alone.
Placement expected_placement(const Plan& plan, const ParamPlan& p) {
  const ModulePlan& mp = plan.modules[p.module];
  const Param& param = *p.param;
  const int64_t world = plan.mesh.world_size();
  // A MoE's shared expert splits by its own mode and axes.
  const ParallelMode mode = param.shared_expert ? mp.shared_mode : mp.mode;
  const std::vector<std::string>& axes = param.shared_expert ? mp.shared_axes : mp.axes;
  const int64_t g = product(plan.mesh, axes);
  Placement e;
  e.holders = world;
  if (mode == ParallelMode::kTensor && param.tensor_split.type == TensorSplit::Type::kUnits &&
      g > 1) {
    e.split_dim = param.tensor_split.dim;
    e.axes = axes;
    e.g = g;
    e.units = param.tensor_split.units;
    e.rep = g > e.units ? g / e.units : 1;
    e.holders = world / g * e.rep;
  } else if (mode == ParallelMode::kExpert && param.expert >= 0 && g > 1) {
    e.expert = true;
    e.axes = mp.axes;
    e.g = g;
    // Contiguous blocks: group rank r owns experts [r*E/g, (r+1)*E/g).
    e.owner = param.expert * g / mp.module->dims.experts;
    e.holders = world / g;
  }
  return e;
}

struct ShardStats {
  int64_t tensors = 0;
  int64_t kv_replicated = 0;  // tensors whose units are replicated inside a group
  int64_t expert_placed = 0;
};

std::string check_shards(const Plan& plan, ShardStats& stats) {
  const Mesh& mesh = plan.mesh;
  const int64_t world = mesh.world_size();
  const int64_t bytes = dtype_bytes(plan.spec().dtype);
  std::vector<int64_t> rank_bytes(world, 0);
  int64_t expected_total = 0;
  std::map<std::vector<std::string>, std::vector<RankGroup>> groups_cache;
  auto groups_of = [&](const std::vector<std::string>& axes) -> const std::vector<RankGroup>& {
    auto it = groups_cache.find(axes);
    if (it == groups_cache.end()) it = groups_cache.emplace(axes, mesh.groups(axes)).first;
    return it->second;
  };

  // Every checkpoint tensor appears once, owned by its module.
  size_t graph_params = 0;
  for (const Module& m : plan.graph().modules) graph_params += m.params.size();
  if (plan.params.size() != graph_params) {
    return "plan has " + std::to_string(plan.params.size()) + " params, the graph " +
           std::to_string(graph_params);
  }
  std::set<std::string> names;
  std::vector<ShardSlice> slices(world);
  for (const ParamPlan& p : plan.params) {
    if (!p.param || p.module < 0 || p.module >= static_cast<int>(plan.modules.size())) {
      return "a param without a param or a module";
    }
    const Param& param = *p.param;
    const auto& owned = plan.modules[p.module].module->params;
    if (&param < owned.data() || &param >= owned.data() + owned.size()) {
      return param.name + " is not a param of its module " + plan.modules[p.module].module->path;
    }
    if (!names.insert(param.name).second) return param.name + " is listed twice";
    ++stats.tensors;
    const Placement e = expected_placement(plan, p);
    const std::string where = param.name + " " + show(param.shape) + " under " +
                              to_string(plan.modules[p.module].mode) + "[" +
                              join(plan.modules[p.module].axes) + "]: ";
    stats.kv_replicated += e.rep > 1;
    stats.expert_placed += e.expert;

    // The layout names the split dimension's axes and nothing else.
    TensorLayout want;
    want.dims.assign(param.shape.size(), {});
    if (e.split_dim >= 0) want.dims[e.split_dim] = e.axes;
    if (p.layout != want) return where + "layout " + p.layout.to_string() + ", expected " + want.to_string();
    if (replication_factor(p, mesh) != e.holders) {
      return where + "replication_factor " + std::to_string(replication_factor(p, mesh)) +
             ", expected " + std::to_string(e.holders);
    }

    // Every rank's slice: in bounds, whole off the split dimension, or empty.
    const size_t nd = param.shape.size();
    int64_t holders = 0;
    std::vector<bool> holds(world, false);
    for (int64_t r = 0; r < world; ++r) {
      ShardSlice s = shard_for_rank(p, mesh, r);
      if (s.offset.size() != nd || s.shape.size() != nd) return where + "slice of wrong rank";
      const bool empty = std::any_of(s.shape.begin(), s.shape.end(), [](int64_t v) { return v == 0; });
      if (!empty) {
        for (size_t d = 0; d < nd; ++d) {
          if (s.offset[d] < 0 || s.shape[d] < 0 || s.offset[d] + s.shape[d] > param.shape[d]) {
            return where + "rank " + std::to_string(r) + " slice offset " + show(s.offset) +
                   " shape " + show(s.shape) + " out of bounds";
          }
          if (static_cast<int>(d) != e.split_dim && (s.offset[d] != 0 || s.shape[d] != param.shape[d])) {
            return where + "rank " + std::to_string(r) + " slice offset " + show(s.offset) +
                   " shape " + show(s.shape) + " cuts dimension " + std::to_string(d);
          }
        }
        ++holders;
        holds[r] = true;
        rank_bytes[r] += s.numel() * bytes;
      }
      slices[r] = std::move(s);
    }
    expected_total += param.numel() * bytes * e.holders;

    std::string why;
    if (e.split_dim >= 0) {
      const int64_t extent = param.shape[e.split_dim];
      if (extent % e.units) return where + "extent not a multiple of the units";
      const int64_t unit = extent / e.units;
      const int64_t pieces = e.g / e.rep;            // distinct slices per group
      const int64_t per_piece = e.units / pieces;    // units per slice
      // Globally: every element held by `holders` ranks.
      std::vector<std::pair<int64_t, int64_t>> all;
      for (int64_t r = 0; r < world; ++r) {
        if (!holds[r]) return where + "rank " + std::to_string(r) + " holds nothing";
        all.push_back({slices[r].offset[e.split_dim],
                       slices[r].offset[e.split_dim] + slices[r].shape[e.split_dim]});
      }
      if (!covers_exactly(all, extent, e.holders, &why)) return where + "over all ranks " + why;
      // Within each group over the split axes: each element `rep` times, on unit boundaries,
      // in group-rank order (group rank k holds units [(k/rep)*per_piece, ... + per_piece)).
      for (const RankGroup& group : groups_of(e.axes)) {
        std::vector<std::pair<int64_t, int64_t>> iv;
        for (size_t k = 0; k < group.size(); ++k) {
          const ShardSlice& s = slices[group[k]];
          const int64_t lo = s.offset[e.split_dim], len = s.shape[e.split_dim];
          iv.push_back({lo, lo + len});
          const int64_t want_lo = (static_cast<int64_t>(k) / e.rep) * per_piece * unit;
          if (lo % unit || len % unit || lo != want_lo || len != per_piece * unit) {
            return where + "rank " + std::to_string(group[k]) + " (group rank " +
                   std::to_string(k) + ") holds [" + std::to_string(lo) + ", " +
                   std::to_string(lo + len) + "), expected [" + std::to_string(want_lo) + ", " +
                   std::to_string(want_lo + per_piece * unit) + ") (unit " +
                   std::to_string(unit) + ")";
          }
        }
        if (!covers_exactly(iv, extent, e.rep, &why)) {
          return where + "within group " + show(group) + " " + why;
        }
      }
    } else if (e.expert) {
      for (const RankGroup& group : groups_of(e.axes)) {
        int64_t in_group = 0;
        for (size_t k = 0; k < group.size(); ++k) {
          if (!holds[group[k]]) continue;
          ++in_group;
          if (static_cast<int64_t>(k) != e.owner) {
            return where + "rank " + std::to_string(group[k]) + " (group rank " +
                   std::to_string(k) + ") holds expert " + std::to_string(param.expert) +
                   ", owned by group rank " + std::to_string(e.owner);
          }
        }
        if (in_group != 1) {
          return where + "held by " + std::to_string(in_group) + " ranks of group " + show(group);
        }
      }
    }
    if (e.split_dim < 0 && holders != e.holders) {
      return where + "held by " + std::to_string(holders) + " ranks, expected " +
             std::to_string(e.holders);
    }
  }

  // (b) weight bytes.
  if (static_cast<int64_t>(plan.ranks.size()) != world) return "plan.ranks has the wrong size";
  int64_t total = 0;
  for (int64_t r = 0; r < world; ++r) {
    if (plan.ranks[r].weight_bytes != rank_bytes[r]) {
      return "rank " + std::to_string(r) + " weight_bytes " + std::to_string(plan.ranks[r].weight_bytes) +
             ", its slices hold " + std::to_string(rank_bytes[r]);
    }
    total += plan.ranks[r].weight_bytes;
  }
  if (total != expected_total) {
    return "weight bytes summed over ranks " + std::to_string(total) +
           " != sum of tensor bytes x replication " + std::to_string(expected_total);
  }
  return "";
}

// (c)
std::string check_mesh(const Plan& plan) {
  const auto& spec_mesh = plan.spec().mesh;
  if (plan.mesh.axes().size() != spec_mesh.size()) return "mesh axes differ from the spec";
  for (size_t i = 0; i < spec_mesh.size(); ++i) {
    if (plan.mesh.axes()[i].name != spec_mesh[i].name || plan.mesh.axes()[i].size != spec_mesh[i].size) {
      return "mesh axis " + std::to_string(i) + " differs from the spec";
    }
  }
  for (int64_t r = 0; r < plan.mesh.world_size(); ++r) {
    if (plan.mesh.rank(plan.mesh.coords(r)) != r) return "rank " + std::to_string(r) + " does not round-trip";
  }
  return "";
}

// (e) + (f, general): groups partition the ranks; a batch axis only under an expert MoE's
// all_to_all pair, over the MoE's own axes.
std::string check_groups(const Plan& plan) {
  const Mesh& mesh = plan.mesh;
  for (size_t i = 0; i < plan.comms.size(); ++i) {
    const Collective& c = plan.comms[i];
    const std::string where = "comms[" + std::to_string(i) + "] " + to_string(c.op) + "[" +
                              join(c.axes) + "] after " + c.after + ": ";
    if (c.axes.empty()) return where + "no axes";
    std::set<std::string> distinct(c.axes.begin(), c.axes.end());
    if (distinct.size() != c.axes.size()) return where + "an axis twice";
    for (const auto& a : c.axes) {
      if (size_of(mesh, a) < 0) return where + "unknown axis " + a;
      if (contains(plan.spec().batch_axes, a)) {
        const bool exchange = c.op == CollectiveOp::kAllToAll && (c.purpose == CollectivePurpose::kMoeDispatch ||
                                                                   c.purpose == CollectivePurpose::kMoeCombine);
        const std::string& moe = c.purpose == CollectivePurpose::kMoeDispatch ? c.before : c.after;
        const auto mp = std::find_if(plan.modules.begin(), plan.modules.end(),
                                     [&](const ModulePlan& m) { return m.module->path == moe; });
        if (!exchange || mp == plan.modules.end() || mp->mode != ParallelMode::kExpert || !contains(mp->axes, a)) {
          return where + "runs over the batch axis " + a;
        }
      }
    }
    const int64_t g = product(mesh, c.axes);
    std::vector<int> seen(mesh.world_size(), 0);
    for (const RankGroup& group : c.groups) {
      if (static_cast<int64_t>(group.size()) != g) {
        return where + "group " + show(group) + " has " + std::to_string(group.size()) +
               " ranks, the axes " + std::to_string(g);
      }
      for (int64_t r : group) {
        if (r < 0 || r >= mesh.world_size()) return where + "rank " + std::to_string(r) + " out of range";
        ++seen[r];
      }
    }
    for (int64_t r = 0; r < mesh.world_size(); ++r) {
      if (seen[r] != 1) return where + "rank " + std::to_string(r) + " in " + std::to_string(seen[r]) + " groups";
    }
    if (c.groups != mesh.groups(c.axes)) return where + "groups differ from Mesh::groups";
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// (d): the activation layouts re-derived from spec-format.md §3, and the collectives replayed.

// The op the transition table of §3 names for one axis (nullopt: none, or a local slice).
std::optional<CollectiveOp> table_op(S from, S to) {
  if (from == S::kPartial && to == S::kReplicated) return CollectiveOp::kAllReduce;
  if (from == S::kPartial && to == S::kBatchSplit) return CollectiveOp::kReduceScatter;
  if (from == S::kBatchSplit && to == S::kReplicated) return CollectiveOp::kAllGather;
  if (from == S::kVocabSplit && to == S::kReplicated) return CollectiveOp::kAllGather;
  return std::nullopt;
}

struct FlowStats {
  std::map<CollectiveOp, int64_t> ops;
  int64_t kv_stream_checks = 0;
  int64_t merges = 0;
};

class FlowReplay {
 public:
  FlowReplay(const Plan& plan, FlowStats& stats) : plan_(plan), mesh_(plan.mesh), stats_(stats) {
    for (const auto& a : mesh_.axes()) names_.push_back(a.name);
  }

  std::string run() {
    ActivationLayout start;
    for (const auto& n : names_) {
      start.axes.push_back(contains(plan_.spec().batch_axes, n) ? S::kBatchSplit : S::kReplicated);
    }
    for (Stream s : {Stream::kText, Stream::kImage, Stream::kAudio}) {
      cur_[s] = start;
      writer_[s] = "input";
    }
    bool pending_merge = false;  // merge_stream joins the text stream at the next text module
    Stream merge_stream = Stream::kImage;
    for (const ModulePlan& mp : plan_.modules) {
      const Module& m = *mp.module;
      const Stream s = m.stream;
      const std::string ctx = "module " + m.path + " (" + to_string(m.kind) + " " +
                              to_string(mp.mode) + "[" + join(mp.axes) + "]): ";
      if (!close_combine(s, m.path)) return ctx + err_;
      const auto before = cur_;
      std::optional<size_t> dispatch;
      if (!consume(m.path, &dispatch)) return ctx + err_;

      const ActivationLayout need = needed(mp, before.at(s));
      const bool merging = pending_merge && s == Stream::kText && m.kind != ModuleKind::kEmbedding;
      if (merging) {
        // The image features join the text stream in the layout the module needs.
        ++stats_.merges;
        if (!finish(merge_stream, need)) return ctx + "merging stream: " + err_;
        pending_merge = false;
      }
      if (m.kv_stream) {
        // Cross-attention's encoder states: never partial, and held for every request the
        // rank computes (split over an axis only where the requests are split too).
        ++stats_.kv_stream_checks;
        // Split exactly where the requests it computes are split, whole elsewhere.
        ActivationLayout kv_need = before.at(*m.kv_stream);
        for (size_t x = 0; x < names_.size(); ++x) {
          kv_need.axes[x] = need.axes[x] == S::kBatchSplit ? S::kBatchSplit : S::kReplicated;
        }
        if (!finish(*m.kv_stream, kv_need)) return ctx + "kv stream: " + err_;
        for (size_t x = 0; x < names_.size(); ++x) {
          if (mesh_.axes()[x].size > 1 && kv_need.axes[x] == S::kBatchSplit &&
              need.axes[x] != S::kBatchSplit) {
            return ctx + "its encoder states are " + kv_need.to_string(names_) +
                   " but it computes requests " + need.to_string(names_) + ": over " +
                   names_[x] + " a rank computes requests whose encoder states it does not hold";
          }
        }
      }
      if (!finish(s, need)) return ctx + err_;
      if (mp.input_layout != need) {
        return ctx + "input_layout " + mp.input_layout.to_string(names_) + ", expected " +
               need.to_string(names_);
      }
      if (std::string e = check_requirement(mp, need); !e.empty()) return ctx + e;

      ActivationLayout out;
      std::string writer_after;
      if (m.kind == ModuleKind::kEncoder && mp.mode == ParallelMode::kTensor && !m.children.empty()) {
        if (dispatch) return ctx + "an all_to_all in front of an encoder";
        // Each inner block: input whole over the axes, output partial, reduced before the next.
        for (const Module& child : m.children) {
          const ActivationLayout b = cur_.at(s);
          std::optional<size_t> none;
          if (!consume(child.path, &none)) return ctx + child.path + ": " + err_;
          if (none) return ctx + child.path + ": an all_to_all inside an encoder";
          const ActivationLayout child_need = needed(mp, b);
          if (!finish(s, child_need)) return ctx + child.path + ": " + err_;
          cur_[s] = produced(mp, child_need);
          writer_[s] = child.path;
        }
        // The encoder's own last steps (final norm, feature selection) need whole values: the
        // last block's partial output is reduced inside the encoder (`before` is the encoder).
        std::optional<size_t> none;
        if (!consume(m.path, &none)) return ctx + "encoder output: " + err_;
        ActivationLayout whole = cur_.at(s);
        for (auto& st : whole.axes) {
          if (st == S::kPartial) st = S::kReplicated;
        }
        if (!finish(s, whole)) return ctx + "encoder output: " + err_;
        out = whole;
      } else if (m.kind == ModuleKind::kMoe && mp.mode == ParallelMode::kExpert) {
        // Over the listed axes where tokens are batch-split: all_to_all dispatch and combine.
        std::vector<std::string> a2a;
        for (size_t x = 0; x < names_.size(); ++x) {
          if (contains(mp.axes, names_[x]) && need.axes[x] == S::kBatchSplit) a2a.push_back(names_[x]);
        }
        if (a2a.empty() != !dispatch) {
          return ctx + (dispatch ? "an all_to_all dispatch where tokens are not split over its axes"
                                 : "no all_to_all dispatch over [" + join(a2a) + "]");
        }
        if (dispatch) {
          const Collective& d = plan_.comms[*dispatch];
          if (std::set<std::string>(d.axes.begin(), d.axes.end()) !=
              std::set<std::string>(a2a.begin(), a2a.end())) {
            return ctx + "dispatch over [" + join(d.axes) + "], expected [" + join(a2a) + "]";
          }
          if (k_ >= plan_.comms.size()) return ctx + "no combine after the experts";
          const Collective& c = plan_.comms[k_];
          if (c.op != CollectiveOp::kAllToAll || c.purpose != CollectivePurpose::kMoeCombine || c.after != m.path ||
              c.axes != d.axes || c.groups != d.groups || c.stream != s) {
            return ctx + "comms[" + std::to_string(k_) + "] " + to_string(c.op) + " '" + to_string(c.purpose) +
                   "' after " + c.after + " is not the combine of the dispatch over [" +
                   join(d.axes) + "]";
          }
          ++stats_.ops[CollectiveOp::kAllToAll];
          open_combine_[s] = k_++;
        }
        out = produced(mp, need);
      } else {
        if (dispatch) return ctx + "an all_to_all in front of a module that is not an expert MoE";
        out = produced(mp, need);
      }
      if (mp.output_layout != out) {
        return ctx + "output_layout " + mp.output_layout.to_string(names_) + ", expected " +
               out.to_string(names_);
      }
      cur_[s] = out;
      writer_[s] = writer_after.empty() ? m.path : writer_after;
      if (m.merges_into_text) {
        pending_merge = true;
        merge_stream = s;
      }
    }

    // The end: every request's logits whole on the ranks that hold it.
    if (!close_combine(Stream::kText, "output")) return "output: " + err_;
    std::optional<size_t> dispatch;
    if (!consume("output", &dispatch)) return "output: " + err_;
    if (dispatch) return "output: an all_to_all before the output";
    ActivationLayout final = cur_.at(Stream::kText);
    for (auto& st : final.axes) {
      if (st == S::kPartial || st == S::kVocabSplit) st = S::kReplicated;
    }
    if (!finish(Stream::kText, final)) return "output: " + err_;
    for (size_t x = 0; x < names_.size(); ++x) {
      if (contains(plan_.spec().batch_axes, names_[x]) && final.axes[x] != S::kBatchSplit) {
        return "output: logits not split over the batch axis " + names_[x];
      }
    }
    if (k_ != plan_.comms.size()) {
      const Collective& c = plan_.comms[k_];
      return "comms[" + std::to_string(k_) + "] " + to_string(c.op) + "[" + join(c.axes) +
             "] after " + c.after + " before " + c.before +
             " is out of execution order or belongs to no module boundary";
    }
    return "";
  }

 private:
  // What a module needs on an input that arrives as `in` (spec-format.md §3): no partial sums
  // anywhere; over its axes replicated (tensor), batch-split (data), either (expert: kept
  // batch-split, else whole); elsewhere as it is.
  ActivationLayout needed(const ModulePlan& mp, const ActivationLayout& in) const {
    ActivationLayout need = in;
    for (size_t x = 0; x < names_.size(); ++x) {
      S& st = need.axes[x];
      const bool reduced = st == S::kPartial || st == S::kVocabSplit;
      if (!contains(mp.axes, names_[x])) {
        if (reduced) st = S::kReplicated;
        continue;
      }
      switch (mp.mode) {
        case ParallelMode::kTensor: st = S::kReplicated; break;
        case ParallelMode::kData: st = S::kBatchSplit; break;
        case ParallelMode::kExpert: st = st == S::kBatchSplit ? S::kBatchSplit : S::kReplicated; break;
        case ParallelMode::kReplicate: if (reduced) st = S::kReplicated; break;
      }
    }
    // A tensor-parallel shared expert (docs/spec-format.md §2, extension) needs its axes whole.
    if (mp.has_shared_expert && mp.shared_mode == ParallelMode::kTensor) {
      for (size_t x = 0; x < names_.size(); ++x) {
        if (contains(mp.shared_axes, names_[x])) need.axes[x] = S::kReplicated;
      }
    }
    return need;
  }

  // What a module leaves: partial over its axes under tensor (vocabulary-split logits for
  // lm_head), batch-split under data, partial where tokens were whole under expert.
  ActivationLayout produced(const ModulePlan& mp, const ActivationLayout& in) const {
    ActivationLayout out = in;
    for (size_t x = 0; x < names_.size(); ++x) {
      if (!contains(mp.axes, names_[x])) continue;
      switch (mp.mode) {
        case ParallelMode::kTensor:
          out.axes[x] = mp.module->kind == ModuleKind::kLmHead ? S::kVocabSplit : S::kPartial;
          break;
        case ParallelMode::kData: out.axes[x] = S::kBatchSplit; break;
        case ParallelMode::kExpert:
          if (in.axes[x] != S::kBatchSplit) out.axes[x] = S::kPartial;
          break;
        case ParallelMode::kReplicate: break;
      }
    }
    // ... and leaves its partial sum there.
    if (mp.has_shared_expert && mp.shared_mode == ParallelMode::kTensor) {
      for (size_t x = 0; x < names_.size(); ++x) {
        if (contains(mp.shared_axes, names_[x])) out.axes[x] = S::kPartial;
      }
    }
    return out;
  }

  // The rules of §3 on a module's input, stated directly; and on the text stream, whole
  // requests on every rank (workload.batch divisible by the product of the axes it is split over).
  std::string check_requirement(const ModulePlan& mp, const ActivationLayout& in) const {
    if (mp.module->stream == Stream::kText) {
      int64_t split = 1;
      for (size_t x = 0; x < names_.size(); ++x) {
        if (in.axes[x] == S::kBatchSplit) split *= mesh_.axes()[x].size;
      }
      if (plan_.spec().workload.batch % split != 0) {
        return "input " + in.to_string(names_) + " splits workload.batch " +
               std::to_string(plan_.spec().workload.batch) + " over " + std::to_string(split) +
               " ranks: a fraction of a request per rank";
      }
    }
    for (size_t x = 0; x < names_.size(); ++x) {
      const S st = in.axes[x];
      if (st == S::kPartial || st == S::kVocabSplit) return "computes on " + std::string(to_string(st)) + " input over " + names_[x];
      if (contains(plan_.spec().batch_axes, names_[x]) && st != S::kBatchSplit) {
        return "input not split over the batch axis " + names_[x];
      }
      if (!contains(mp.axes, names_[x])) continue;
      if (mp.mode == ParallelMode::kTensor && st != S::kReplicated) return "tensor input not whole over " + names_[x];
      if (mp.mode == ParallelMode::kData && st != S::kBatchSplit) return "data input not split over " + names_[x];
    }
    return "";
  }

  // A combine left open on stream s must feed this consumer.
  bool close_combine(Stream s, const std::string& consumer) {
    auto it = open_combine_.find(s);
    if (it == open_combine_.end() || !it->second) return true;
    const Collective& c = plan_.comms[*it->second];
    it->second.reset();
    if (c.before != consumer) {
      err_ = "the combine after " + c.after + " names '" + c.before + "' as its consumer, expected '" +
             consumer + "'";
      return false;
    }
    return true;
  }

  // Replays the collectives in front of `consumer` (consecutive in plan.comms), checking each
  // op against the state it is applied to; remembers, per stream and axis, the state each op
  // started from so `finish` can check the table.
  bool consume(const std::string& consumer, std::optional<size_t>* dispatch) {
    while (k_ < plan_.comms.size() && plan_.comms[k_].before == consumer) {
      const Collective& c = plan_.comms[k_];
      const std::string what = "comms[" + std::to_string(k_) + "] " + to_string(c.op) + "[" +
                               join(c.axes) + "] after " + c.after + ": ";
      if (*dispatch) {
        err_ = what + "follows the all_to_all dispatch in front of the same module";
        return false;
      }
      if (c.after != writer_.at(c.stream)) {
        err_ = what + "the stream was last written by " + writer_.at(c.stream);
        return false;
      }
      ActivationLayout& st = cur_[c.stream];
      const int64_t g = product(mesh_, c.axes);
      if (c.op == CollectiveOp::kAllToAll) {
        if (c.purpose != CollectivePurpose::kMoeDispatch) {
          err_ = what + "an all_to_all '" + to_string(c.purpose) + "' in front of a module";
          return false;
        }
        for (const auto& a : c.axes) {
          if (st.axes[axis(a)] != S::kBatchSplit) {
            err_ = what + "tokens are " + to_string(st.axes[axis(a)]) + " over " + a + ", not split";
            return false;
          }
        }
        ++stats_.ops[c.op];
        *dispatch = k_++;
        continue;
      }
      // The layouts the plan states for the executor are the replayed ones, and so is what moves.
      if (c.from_layout != st) {
        err_ = what + "states the layout before it as " + c.from_layout.to_string(names_) + ", the stream is in " +
               st.to_string(names_);
        return false;
      }
      const CollectiveSplit split = c.op == CollectiveOp::kAllReduce        ? CollectiveSplit::kHidden
                                    : st.axes[axis(c.axes[0])] == S::kVocabSplit ? CollectiveSplit::kVocabulary
                                    : c.stream == Stream::kText               ? CollectiveSplit::kRequests
                                                                              : CollectiveSplit::kItems;
      if (c.split != split) {
        err_ = what + "moves along " + to_string(c.split) + ", expected " + to_string(split);
        return false;
      }
      // Bytes each rank sends (text stream): requests on the rank before the op x tokens x width.
      if (c.stream == Stream::kText) {
        if (std::string e = check_bytes(c, st, g); !e.empty()) {
          err_ = what + e;
          return false;
        }
      }
      for (const auto& a : c.axes) {
        const size_t x = axis(a);
        const S from = st.axes[x];
        S to;
        switch (c.op) {
          case CollectiveOp::kAllReduce:
            if (from != S::kPartial) return bad(what, a, from);
            to = S::kReplicated;
            break;
          case CollectiveOp::kReduceScatter:
            if (from != S::kPartial) return bad(what, a, from);
            to = S::kBatchSplit;
            break;
          case CollectiveOp::kAllGather:
            if (from != S::kBatchSplit && from != S::kVocabSplit) return bad(what, a, from);
            to = S::kReplicated;
            break;
          default:
            return bad(what, a, from);
        }
        applied_.push_back({k_, c.stream, x, from});
        st.axes[x] = to;
      }
      if (c.to_layout != st) {
        err_ = what + "states the layout after it as " + c.to_layout.to_string(names_) + ", the op gives " +
               st.to_string(names_);
        return false;
      }
      ++stats_.ops[c.op];
      ++k_;
    }
    return true;
  }

  bool bad(const std::string& what, const std::string& a, S from) {
    err_ = what + "applied to " + to_string(from) + " over " + a;
    return false;
  }

  std::string check_bytes(const Collective& c, const ActivationLayout& st, int64_t g) const {
    const ModelGraph& graph = plan_.graph();
    int64_t split = 1;
    bool vocab = false;
    for (size_t x = 0; x < names_.size(); ++x) {
      if (st.axes[x] == S::kBatchSplit) split *= mesh_.axes()[x].size;
    }
    for (const auto& a : c.axes) vocab |= st.axes[axis(a)] == S::kVocabSplit;
    const int64_t requests = plan_.spec().workload.batch / split;
    bool logits = false;
    for (const ModulePlan& mp : plan_.modules) {
      logits |= mp.module->kind == ModuleKind::kLmHead && mp.module->path == c.after;
    }
    int64_t prefill_tokens = plan_.spec().workload.prompt_tokens +
                             plan_.spec().workload.images_per_request * graph.workload.tokens_per_image;
    int64_t width = graph.hidden;
    if (logits) {
      prefill_tokens = 1;  // the last position of each request
      width = vocab ? graph.vocab / g : graph.vocab;
    }
    const int64_t b = dtype_bytes(plan_.spec().dtype);
    const int64_t want_prefill = bytes_sent(c.op, g, requests * prefill_tokens * width * b);
    const int64_t want_decode = bytes_sent(c.op, g, requests * width * b);
    if (c.bytes_prefill != want_prefill || c.bytes_decode != want_decode) {
      return "bytes prefill/decode " + std::to_string(c.bytes_prefill) + "/" +
             std::to_string(c.bytes_decode) + ", expected " + std::to_string(want_prefill) + "/" +
             std::to_string(want_decode) + " (" + std::to_string(requests) + " requests on the rank, width " +
             std::to_string(width) + ")";
    }
    return "";
  }

  // Takes stream s to `target`: what the replayed collectives left may only need local slices
  // (replicated -> batch), and each op must be the one the table names for its axis's move from
  // where it started to the target.
  bool finish(Stream s, const ActivationLayout& target) {
    ActivationLayout& st = cur_[s];
    for (size_t x = 0; x < names_.size(); ++x) {
      if (st.axes[x] != target.axes[x] &&
          !(st.axes[x] == S::kReplicated && target.axes[x] == S::kBatchSplit)) {
        err_ = "needs " + target.to_string(names_) + " but gets " + st.to_string(names_) +
               ": no collective takes " + names_[x] + " from " + to_string(st.axes[x]) + " to " +
               to_string(target.axes[x]);
        return false;
      }
    }
    for (const Applied& a : applied_) {
      if (a.stream != s) continue;
      const auto want = table_op(a.from, target.axes[a.axis]);
      const CollectiveOp got = plan_.comms[a.index].op;
      if (want != got) {
        err_ = "comms[" + std::to_string(a.index) + "] is " + to_string(got) + " over " +
               names_[a.axis] + " for " + to_string(a.from) + " -> " +
               to_string(target.axes[a.axis]) + "; the table says " +
               (want ? to_string(*want) : "no collective");
        return false;
      }
    }
    applied_.erase(std::remove_if(applied_.begin(), applied_.end(),
                                  [s](const Applied& a) { return a.stream == s; }),
                   applied_.end());
    st = target;
    return true;
  }

  size_t axis(const std::string& name) const {
    return static_cast<size_t>(std::find(names_.begin(), names_.end(), name) - names_.begin());
  }

  struct Applied {
    size_t index;
    Stream stream;
    size_t axis;
    S from;
  };

  const Plan& plan_;
  const Mesh& mesh_;
  FlowStats& stats_;
  std::vector<std::string> names_;
  std::map<Stream, ActivationLayout> cur_;
  std::map<Stream, std::string> writer_;
  std::map<Stream, std::optional<size_t>> open_combine_;
  std::vector<Applied> applied_;
  size_t k_ = 0;
  std::string err_;
};

// ---------------------------------------------------------------------------------------------
// Running the checks over the cases.

constexpr int64_t kShownFailures = 12;  // the rest are counted

struct Totals {
  int64_t plans = 0;
  int64_t rejected = 0;  // check_spec said no
  int64_t failures = 0;
  ShardStats shards;
  FlowStats flow;
  std::map<std::string, int64_t> plans_per_model;
};

// Every property on one plan; failures are reported (the first few per test in full).
void check_plan(const Plan& plan, const std::string& label, Totals& totals) {
  ++totals.plans;
  const std::pair<const char*, std::string> results[] = {
      {"(a)/(b) shards and weight bytes", check_shards(plan, totals.shards)},
      {"(c) rank arithmetic", check_mesh(plan)},
      {"(d) derived collectives", FlowReplay(plan, totals.flow).run()},
      {"(e) groups", check_groups(plan)},
  };
  for (const auto& [property, error] : results) {
    if (error.empty()) continue;
    if (++totals.failures <= kShownFailures) ADD_FAILURE() << property << ": " << label << ": " << error;
  }
}

void run_cases(const ModelCase& model, const std::vector<MeshShape>& meshes, int random_seeds,
               Totals& totals) {
  for (const MeshShape& mesh : meshes) {
    std::vector<Scenario> scenarios = structured_scenarios(model, mesh);
    for (int i = 0; i < random_seeds; ++i) {
      const uint32_t seed = static_cast<uint32_t>(mesh.size() * 1000003u + i * 7919u +
                                                  axes_product(mesh, {"x", "y", "z"}) * 31u);
      scenarios.push_back(random_scenario(model, mesh, seed));
      scenarios.push_back(with_minimal_batch(mesh, scenarios.back()));
    }
    for (const Scenario& sc : scenarios) {
      auto plan = plan_if_valid(model, mesh, sc);
      if (!plan) {
        ++totals.rejected;
        continue;
      }
      const std::string label = model.name + " " + describe(mesh) + " " + sc.label +
                                (sc.batch_axes.empty() ? "" : " batch_axes [" + join(sc.batch_axes) + "]");
      check_plan(*plan, label, totals);
      ++totals.plans_per_model[model.name];
    }
  }
}

void report(const Totals& t) {
  std::ostringstream out;
  out << t.plans << " plans checked, " << t.rejected << " combinations rejected by check_spec, "
      << t.shards.tensors << " tensors (" << t.shards.kv_replicated << " with replicated units, "
      << t.shards.expert_placed << " expert-placed); ops:";
  for (const auto& [op, n] : t.flow.ops) out << " " << to_string(op) << " " << n;
  out << "; per model:";
  for (const auto& [m, n] : t.plans_per_model) out << " " << m << " " << n;
  std::printf("%s\n", out.str().c_str());
  if (t.failures > kShownFailures) {
    ADD_FAILURE() << t.failures << " failures in all (the first " << kShownFailures << " shown)";
  }
}

TEST(PlanProperties, ShippedConfigsAreAllFound) {
  std::set<std::string> names;
  for (const auto& m : shipped_models()) names.insert(m.name);
  for (const char* want : {"llama-3-8b", "llama-3-70b", "mixtral-8x7b", "llava-1.5-7b",
                           "whisper-large-v3", "tiny-llama", "tiny-llava", "tiny-mistral",
                           "tiny-mixtral", "tiny-qwen2", "tiny-whisper", "qwen1.5-moe-a2.7b", "tiny-qwen2-moe"}) {
    EXPECT_EQ(names.count(want), 1u) << want;
  }
}

// Every third mesh of the ordered factorizations of these world sizes into 1..3 axes (the stride
// keeps the run short and still mixes 1, 2 and 3 axes, size-1 axes and odd sizes).
std::vector<MeshShape> tiny_meshes() {
  const auto all = meshes_for({1, 2, 3, 4, 6, 8, 12, 16, 32, 64});
  std::vector<MeshShape> out;
  for (size_t i = 0; i < all.size(); i += 3) out.push_back(all[i]);
  return out;
}

// Tiny configs over many meshes of 1..64 ranks and 1..3 axes.
// Among these cases: cross-attention whose encoder states are batch-split over an axis its
// requests are not (see CrossAttentionGathersEncoderStates), and chained data splits with the
// smallest batch check_spec allows (see ChainedDataSplitsKeepWholeRequests).
TEST(PlanProperties, TinyConfigsOverManyMeshes) {
  const auto meshes = tiny_meshes();
  {
    std::set<size_t> axis_counts;
    bool size_one = false, odd = false;
    for (const auto& m : meshes) {
      axis_counts.insert(m.size());
      for (const auto& a : m) {
        size_one |= a.size == 1;
        odd |= a.size % 2 == 1 && a.size > 1;
      }
    }
    EXPECT_EQ(axis_counts.size(), 3u);
    EXPECT_TRUE(size_one);
    EXPECT_TRUE(odd);
    EXPECT_GE(meshes.size(), 50u);
  }
  Totals totals;
  for (const ModelCase& model : shipped_models()) {
    if (model.tiny) run_cases(model, meshes, 2, totals);
  }
  report(totals);
  for (const ModelCase& model : shipped_models()) {
    if (model.tiny) {
      EXPECT_GE(totals.plans_per_model[model.name], 800) << model.name;
    }
  }
  EXPECT_GE(totals.plans, 6000);
  // The cases reach every corner the properties speak of.
  EXPECT_GT(totals.shards.kv_replicated, 0);
  EXPECT_GT(totals.shards.expert_placed, 0);
  EXPECT_GT(totals.flow.kv_stream_checks, 0);
  EXPECT_GT(totals.flow.merges, 0);
  for (CollectiveOp op : {CollectiveOp::kAllReduce, CollectiveOp::kAllGather,
                          CollectiveOp::kReduceScatter, CollectiveOp::kAllToAll}) {
    EXPECT_GT(totals.flow.ops[op], 0) << to_string(op);
  }
}

// Real configs (up to 80 layers, 768 expert tensors): fewer meshes, up to 64 ranks.
// The real configs on serving-sized meshes, whisper-large-v3's cross-attention included.
TEST(PlanProperties, RealConfigsOnServingMeshes) {
  const std::vector<MeshShape> meshes = {
      {{"x", 1}},
      {{"x", 8}},
      {{"x", 2}, {"y", 4}},
      {{"x", 4}, {"y", 2}},
      {{"x", 1}, {"y", 8}, {"z", 1}},
      {{"x", 2}, {"y", 2}, {"z", 2}},
      {{"x", 3}, {"y", 4}},
      {{"x", 8}, {"y", 8}},
  };
  Totals totals;
  for (const ModelCase& model : shipped_models()) {
    if (!model.tiny) run_cases(model, meshes, 1, totals);
  }
  report(totals);
  for (const ModelCase& model : shipped_models()) {
    if (!model.tiny) {
      EXPECT_GE(totals.plans_per_model[model.name], 60) << model.name;
    }
  }
  EXPECT_GT(totals.shards.kv_replicated, 0);
  EXPECT_GT(totals.shards.expert_placed, 0);
  EXPECT_GT(totals.flow.ops[CollectiveOp::kAllToAll], 0);
}

// The specs shipped in specs/, through the whole `planner check` pass.
TEST(PlanProperties, ShippedSpecs) {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(SHARDPLAN_SOURCE_DIR "/specs")) {
    if (e.path().extension() == ".yaml") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 6u);
  Totals totals;
  for (const auto& f : files) {
    Diagnostics diags;
    CheckedSpec checked;
    ASSERT_EQ(check_spec_file(f, diags, &checked), CheckOutcome::kValid) << f;
    auto plan = build_plan(std::move(checked));
    check_plan(*plan, f, totals);
    EXPECT_FALSE(plan->comms.empty()) << f;
  }
  report(totals);
  EXPECT_EQ(totals.plans, static_cast<int64_t>(files.size()));
}

// (f) {dp: 2, tp: 4} with batch_axes [dp]: requests are split over dp, so every collective stays
// inside a tp group, [0,1,2,3] or [4,5,6,7], whatever the modes over tp (but an expert rule's
// all_to_all over dp where the random rules put experts over dp).
// Every collective stays inside a tp group when requests are split over dp.
TEST(PlanProperties, BatchAxisKeepsCollectivesInsideTpGroups) {
  const MeshShape mesh = {{"dp", 2}, {"tp", 4}};
  const std::vector<std::set<int64_t>> tp_groups = {{0, 1, 2, 3}, {4, 5, 6, 7}};
  auto rule = [](std::vector<ModuleKind> kinds, ParallelMode mode) {
    return RuleCase{std::move(kinds), "", mode, {"tp"}};
  };
  int64_t plans = 0, comms = 0;
  Totals totals;
  for (const ModelCase& model : shipped_models()) {
    std::vector<Scenario> scenarios = {
        {"tensor[tp]", {"dp"}, {rule(kAllKinds, ParallelMode::kTensor)}},
        {"data[tp]", {"dp"}, {rule(kAllKinds, ParallelMode::kData)}},
        {"attention data[tp], rest tensor[tp]",
         {"dp"},
         {rule(kAllKinds, ParallelMode::kTensor), rule({ModuleKind::kAttention}, ParallelMode::kData)}},
        {"expert[tp], rest tensor[tp]",
         {"dp"},
         {rule(kDenseKinds, ParallelMode::kTensor), rule({ModuleKind::kMoe}, ParallelMode::kExpert)}},
        {"expert[tp], attention data[tp]",
         {"dp"},
         {rule({ModuleKind::kAttention}, ParallelMode::kData), rule({ModuleKind::kMoe}, ParallelMode::kExpert)}},
    };
    const std::vector<std::string> dp = {"dp"};
    for (uint32_t seed = 1; seed <= 6; ++seed) {
      // Random per-module modes over tp, dp a batch axis.
      scenarios.push_back(random_scenario(model, mesh, seed, &dp));
    }
    for (const Scenario& sc : scenarios) {
      auto plan = plan_if_valid(model, mesh, sc);
      if (!plan) continue;
      ++plans;
      const std::string label = model.name + " {dp: 2, tp: 4} batch_axes [dp] " + sc.label;
      check_plan(*plan, label, totals);
      for (const Collective& c : plan->comms) {
        ++comms;
        // An expert rule over dp exchanges its tokens there (check_plan's (f) allows only that).
        if (c.op == CollectiveOp::kAllToAll && contains(c.axes, std::string("dp"))) continue;
        for (const RankGroup& group : c.groups) {
          const bool inside = std::any_of(tp_groups.begin(), tp_groups.end(), [&](const auto& tg) {
            return std::all_of(group.begin(), group.end(), [&](int64_t r) { return tg.count(r) > 0; });
          });
          EXPECT_TRUE(inside) << label << ": " << to_string(c.op) << "[" << join(c.axes)
                              << "] after " << c.after << " has group " << show(group);
        }
      }
    }
  }
  report(totals);
  EXPECT_GE(plans, 60);
  EXPECT_GE(comms, 1000);
}

// (f) for experts over a batch axis: {dp: 2, tp: 4}, requests over dp, experts over [dp, tp] or
// [dp]: the MoE's all_to_all pair runs over dp (groups {r, r + 4}); every other collective stays
// inside a tp group; (a) to (e) hold as for every plan.
TEST(PlanProperties, ExpertsOverABatchAxisExchangeOnlyThere) {
  const MeshShape mesh = {{"dp", 2}, {"tp", 4}};
  const std::vector<std::set<int64_t>> tp_groups = {{0, 1, 2, 3}, {4, 5, 6, 7}};
  int64_t plans = 0, exchanges = 0;
  Totals totals;
  for (const ModelCase& model : shipped_models()) {
    bool moe = false;
    for (const Module& m : model.graph.modules) moe = moe || m.kind == ModuleKind::kMoe;
    if (!moe) continue;
    const std::vector<Scenario> scenarios = {
        {"expert[dp, tp], rest tensor[tp]",
         {"dp"},
         {RuleCase{kDenseKinds, "", ParallelMode::kTensor, {"tp"}},
          RuleCase{{ModuleKind::kMoe}, "", ParallelMode::kExpert, {"dp", "tp"}}}},
        {"expert[dp], attention data[tp]",
         {"dp"},
         {RuleCase{{ModuleKind::kAttention}, "", ParallelMode::kData, {"tp"}},
          RuleCase{{ModuleKind::kMoe}, "", ParallelMode::kExpert, {"dp"}}}},
        {"expert[tp, dp], attention data[tp]",
         {"dp"},
         {RuleCase{{ModuleKind::kAttention}, "", ParallelMode::kData, {"tp"}},
          RuleCase{{ModuleKind::kMoe}, "", ParallelMode::kExpert, {"tp", "dp"}}}},
    };
    for (const Scenario& sc : scenarios) {
      auto plan = plan_if_valid(model, mesh, sc);
      if (!plan) continue;  // Qwen1.5-MoE's 60 experts do not split over 8
      ++plans;
      const std::string label = model.name + " {dp: 2, tp: 4} batch_axes [dp] " + sc.label;
      check_plan(*plan, label, totals);
      for (const Collective& c : plan->comms) {
        if (contains(c.axes, std::string("dp"))) {
          EXPECT_EQ(c.op, CollectiveOp::kAllToAll) << label << " after " << c.after;
          ++exchanges;
          continue;
        }
        for (const RankGroup& group : c.groups) {
          const bool inside = std::any_of(tp_groups.begin(), tp_groups.end(), [&](const auto& tg) {
            return std::all_of(group.begin(), group.end(), [&](int64_t r) { return tg.count(r) > 0; });
          });
          EXPECT_TRUE(inside) << label << ": " << to_string(c.op) << "[" << join(c.axes) << "] after " << c.after;
        }
      }
    }
  }
  report(totals);
  EXPECT_GE(plans, 10);  // 4 MoE configs x 3, less Qwen1.5-MoE's two over 8 ranks
  EXPECT_GE(exchanges, 2 * plans);  // a dispatch and a combine per MoE layer at least
}

// The smallest case of what (d) finds on whisper: the encoder splits the clips over tp, the
// decoder is replicated, so every rank computes cross-attention for all requests and needs the
// encoder states of all of them: an all_gather[tp] of the audio stream in front of the first
// cross-attention (as the table says for batch -> replicated).
// A replicated decoder computes every request, so a data-parallel encoder's states must be
// gathered before the first cross-attention (a kv requirement taken from the kv stream alone
// would keep the split and read states the rank does not hold).
TEST(PlanProperties, CrossAttentionGathersEncoderStates) {
  const ModelCase* whisper = nullptr;
  for (const auto& m : shipped_models()) {
    if (m.name == "tiny-whisper") whisper = &m;
  }
  ASSERT_NE(whisper, nullptr);
  auto plan = plan_if_valid(*whisper, {{"tp", 2}},
                            {"encoder data[tp]", {}, {RuleCase{{ModuleKind::kEncoder}, "", ParallelMode::kData, {"tp"}}}});
  ASSERT_NE(plan, nullptr);
  const Collective* gather = nullptr;
  for (const Collective& c : plan->comms) {
    if (c.stream == Stream::kAudio) gather = &c;
  }
  ASSERT_NE(gather, nullptr) << "no collective on the audio stream; " << plan->comms.size()
                             << " collectives in all";
  EXPECT_EQ(gather->op, CollectiveOp::kAllGather);
  EXPECT_EQ(gather->axes, std::vector<std::string>{"tp"});
  EXPECT_EQ(gather->after, "model.encoder");
  EXPECT_EQ(gather->before, "model.decoder.layers.0.encoder_attn");
  FlowStats fs;
  EXPECT_EQ(FlowReplay(*plan, fs).run(), "");
}

// Data-mode modules over different axes split the requests over the product of those axes (a
// data module keeps a split it gets, §3): 2 requests split over x (attention) and then over y
// (mlp) are half a request per rank. Either check_spec rejects the spec, or the plan keeps whole
// requests on every rank.
// A data split carries over into later modules, so consecutive data-parallel modules over
// different axes multiply: check_spec must reject 2 requests over 4 ranks (dividing by each
// data group alone, 2 % 2 == 0 twice, would accept it).
TEST(PlanProperties, ChainedDataSplitsKeepWholeRequests) {
  const ModelCase* llama = nullptr;
  for (const auto& m : shipped_models()) {
    if (m.name == "tiny-llama") llama = &m;
  }
  ASSERT_NE(llama, nullptr);
  Scenario sc{"attention data[x], mlp data[y]",
              {},
              {RuleCase{{ModuleKind::kAttention}, "", ParallelMode::kData, {"x"}},
               RuleCase{{ModuleKind::kMlp}, "", ParallelMode::kData, {"y"}}},
              /*batch=*/2};
  const MeshShape mesh = {{"x", 2}, {"y", 2}};
  auto plan = plan_if_valid(*llama, mesh, sc);
  if (!plan) return;  // rejected by check_spec: fine
  for (const ModulePlan& mp : plan->modules) {
    int64_t split = 1;
    for (size_t x = 0; x < mp.input_layout.axes.size(); ++x) {
      if (mp.input_layout.axes[x] == S::kBatchSplit) split *= mesh[x].size;
    }
    EXPECT_EQ(sc.batch % split, 0) << mp.module->path << " computes on "
                                   << mp.input_layout.to_string({"x", "y"}) << ": " << sc.batch
                                   << " requests over " << split << " ranks";
  }
}

// The checks themselves: a plan with a wrong op, a missing collective, a wrong layout or a
// shard off by one unit must be caught (a check that cannot fail proves nothing).
TEST(PlanProperties, ChecksCatchBrokenPlans) {
  const ModelCase* llama = nullptr;
  for (const auto& m : shipped_models()) {
    if (m.name == "tiny-llama") llama = &m;
  }
  ASSERT_NE(llama, nullptr);
  const MeshShape mesh = {{"dp", 2}, {"tp", 4}};
  auto fresh = [&] {
    return plan_if_valid(*llama, mesh,
                         {"tensor[tp]", {"dp"}, {RuleCase{kAllKinds, "", ParallelMode::kTensor, {"tp"}}}});
  };
  FlowStats fs;
  ShardStats ss;
  {
    auto plan = fresh();
    ASSERT_NE(plan, nullptr);
    EXPECT_EQ(FlowReplay(*plan, fs).run(), "");
    EXPECT_EQ(check_shards(*plan, ss), "");
    EXPECT_EQ(check_groups(*plan), "");
  }
  {  // all_reduce where the table says reduce_scatter is caught, and vice versa.
    auto plan = fresh();
    ASSERT_FALSE(plan->comms.empty());
    ASSERT_EQ(plan->comms[0].op, CollectiveOp::kAllReduce);
    plan->comms[0].op = CollectiveOp::kReduceScatter;
    EXPECT_NE(FlowReplay(*plan, fs).run(), "");
  }
  {  // A dropped all_reduce.
    auto plan = fresh();
    plan->comms.erase(plan->comms.begin() + 1);
    EXPECT_NE(FlowReplay(*plan, fs).run(), "");
  }
  {  // Two collectives swapped out of execution order.
    auto plan = fresh();
    std::swap(plan->comms[1], plan->comms[2]);
    EXPECT_NE(FlowReplay(*plan, fs).run(), "");
  }
  {  // A module claiming a partial input.
    auto plan = fresh();
    plan->modules[1].input_layout.axes[1] = S::kPartial;
    EXPECT_NE(FlowReplay(*plan, fs).run(), "");
  }
  {  // Wrong bytes.
    auto plan = fresh();
    plan->comms[0].bytes_decode += 2;
    EXPECT_NE(FlowReplay(*plan, fs).run(), "");
  }
  {  // Groups that cross the batch axis.
    auto plan = fresh();
    plan->comms[0].axes = {"dp", "tp"};
    plan->comms[0].groups = plan->mesh.groups({"dp", "tp"});
    EXPECT_NE(check_groups(*plan), "");
  }
  {  // A tensor split over the wrong axis.
    auto plan = fresh();
    for (ParamPlan& p : plan->params) {
      if (p.split_dim >= 0) {
        p.split_axes = {"dp"};  // slices follow the dp coordinate instead of tp
        break;
      }
    }
    EXPECT_NE(check_shards(*plan, ss), "");
  }
  {  // Weight bytes off on one rank.
    auto plan = fresh();
    plan->ranks[3].weight_bytes += 2;
    EXPECT_NE(check_shards(*plan, ss), "");
  }
  // The interval sweep itself.
  std::string why;
  EXPECT_TRUE(covers_exactly({{0, 4}, {4, 8}}, 8, 1, &why));
  EXPECT_TRUE(covers_exactly({{0, 4}, {0, 4}, {4, 8}, {4, 8}}, 8, 2, &why));
  EXPECT_FALSE(covers_exactly({{0, 4}, {5, 8}}, 8, 1, &why));
  EXPECT_FALSE(covers_exactly({{0, 5}, {4, 8}}, 8, 1, &why));
  EXPECT_FALSE(covers_exactly({{0, 4}}, 8, 1, &why));
  EXPECT_FALSE(covers_exactly({{0, 4}, {4, 9}}, 8, 1, &why));
  EXPECT_FALSE(covers_exactly({{1, 4}, {4, 8}}, 8, 1, &why));
}

}  // namespace
}  // namespace shardplan
