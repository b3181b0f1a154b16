// Candidate specs, their prediction and ranking (see sweep.h; the model: docs/sweep.md).
#include "planner/sweep/sweep.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "models/graph/registry.h"
#include "planner/plan/binding.h"
#include "planner/spec/spec_check.h"

namespace shardplan {
namespace {

constexpr char kConfigPlaceholder[] = "@CONFIG@";

// One choice of mode for the modules of some kinds, over some mesh axes.
struct Choice {
  std::vector<std::string> kinds;
  std::string mode;                 // replicate, tensor, data, expert
  std::vector<std::string> axes;    // empty for replicate
  std::string shared_expert;        // "", replicate, tensor (moe only; tensor over tp)
  std::string label;
};

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& x : v) out += (out.empty() ? "" : sep) + x;
  return out;
}

// One mesh: requests over dp and ep (batch axes), the modules' modes over tp, and the experts of
// an MoE over ep (ep > 1 only for models with experts).
struct MeshShape {
  int64_t dp = 1, ep = 1, tp = 1;
  std::string name() const {
    std::string n;
    if (dp > 1) n += "dp" + std::to_string(dp) + "-";
    if (ep > 1) n += "ep" + std::to_string(ep) + "-";
    return n + "tp" + std::to_string(tp);
  }
};

// The alternatives per group of kinds the model has. Over tp (when tp > 1) every kind's modes;
// with an ep axis the experts are split over it (alone or with tp): an MoE kept off ep would
// make the mesh the same as dp x ep. With ep the other kinds are tensor over tp or replicated: a
// data mode over tp next to experts over ep x tp is the plan of the mesh with ep and tp merged.
std::vector<std::vector<Choice>> choice_groups(const ModelGraph& graph, const MeshShape& m) {
  std::set<ModuleKind> kinds;
  bool shared = false;
  for (const Module& mod : graph.modules) {
    kinds.insert(mod.kind);
    shared = shared || mod.dims.shared_expert_intermediate > 0;
  }
  const std::vector<std::string> tp = {"tp"};
  std::vector<std::vector<Choice>> groups;
  if (kinds.count(ModuleKind::kMoe) && (m.tp > 1 || m.ep > 1)) {
    std::vector<Choice> routed;  // the routed experts' choices, completed with the shared expert's below
    if (m.ep > 1) {
      routed.push_back({{"moe"}, "expert", {"ep"}, "", "moe expert over ep"});
      if (m.tp > 1) routed.push_back({{"moe"}, "expert", {"ep", "tp"}, "", "moe expert over ep x tp"});
    } else {
      routed.push_back({{"moe"}, "tensor", tp, "", "moe tensor"});
      routed.push_back({{"moe"}, "expert", tp, "", "moe expert"});
    }
    std::vector<Choice> moe;
    for (Choice c : routed) {
      if (!shared) {
        moe.push_back(c);
        continue;
      }
      // The shared expert replicated, or tensor over tp (it needs its tokens whole there).
      const std::string label = c.label;
      c.shared_expert = "replicate";
      c.label = label + " (shared replicate)";
      moe.push_back(c);
      if (m.tp > 1) {
        c.shared_expert = "tensor";
        c.label = label + " (shared tensor)";
        moe.push_back(c);
      }
    }
    groups.push_back(moe);
  }
  if (m.tp == 1) return groups;  // the other kinds: replicated, their requests split over dp and ep
  const bool data = m.ep == 1;
  const auto tensor_or_data = [&](std::vector<std::string> kinds_of, const std::string& name) {
    std::vector<Choice> g = {{kinds_of, "tensor", tp, "", name + " tensor"}};
    if (data) g.push_back({kinds_of, "data", tp, "", name + " data"});
    return g;
  };
  groups.insert(groups.begin(), tensor_or_data({"attention"}, "attention"));
  if (kinds.count(ModuleKind::kMlp)) groups.push_back(tensor_or_data({"mlp"}, "mlp"));
  if (kinds.count(ModuleKind::kCrossAttention)) groups.push_back(tensor_or_data({"cross_attention"}, "cross-attention"));
  groups.push_back({{{"embedding", "lm_head"}, "tensor", tp, "", "vocabulary tensor"},
                    {{"embedding", "lm_head"}, "replicate", {}, "", "vocabulary replicated"}});
  if (kinds.count(ModuleKind::kEncoder)) {
    groups.push_back({{{"encoder"}, "data", tp, "", "encoder data"},
                      {{"encoder"}, "tensor", tp, "", "encoder tensor"},
                      {{"encoder"}, "replicate", {}, "", "encoder replicated"}});
  }
  if (kinds.count(ModuleKind::kProjector)) {
    groups.push_back({{{"projector"}, "tensor", tp, "", "projector tensor"},
                      {{"projector"}, "replicate", {}, "", "projector replicated"}});
  }
  return groups;
}

std::string spec_yaml(const std::string& name, const SweepOptions& o, const MeshShape& m,
                      const std::vector<const Choice*>& picks, bool images) {
  std::ostringstream y;
  y << "# yaml-language-server: $schema=../schemas/spec.schema.json\n"
    << "# Written by planner sweep (docs/sweep.md).\nversion: 1\nname: \"" << name << "\"\nmodel:\n  config: "
    << kConfigPlaceholder << "\n  dtype: " << o.dtype << "\n";
  std::vector<std::string> mesh, batch_axes;
  if (m.dp > 1) {
    mesh.push_back("dp: " + std::to_string(m.dp));
    batch_axes.push_back("dp");
  }
  if (m.ep > 1) {
    mesh.push_back("ep: " + std::to_string(m.ep));
    batch_axes.push_back("ep");
  }
  if (m.tp > 1 || mesh.empty()) mesh.push_back("tp: " + std::to_string(m.tp));
  y << "mesh: {" << join(mesh, ", ") << "}\n";
  if (!batch_axes.empty()) y << "batch_axes: [" << join(batch_axes, ", ") << "]\n";
  if (!picks.empty()) {
    y << "modules:\n";
    for (const Choice* c : picks) {
      y << "  - {kind: [" << join(c->kinds, ", ") << "], mode: " << c->mode;
      if (!c->axes.empty()) y << ", axes: [" << join(c->axes, ", ") << "]";
      if (!c->shared_expert.empty()) {
        y << ", shared_expert: {mode: " << c->shared_expert << (c->shared_expert == "tensor" ? ", axes: [tp]" : "")
          << "}";
      }
      y << "}\n";
    }
  }
  y << "workload:\n  batch: " << o.workload.batch << "\n  prompt_tokens: " << o.workload.prompt_tokens
    << "\n  new_tokens: " << o.workload.new_tokens << "\n";
  if (images) y << "  images_per_request: " << o.workload.images_per_request << "\n";
  return y.str();
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

}  // namespace

Prediction predict(const Plan& plan, const Hardware& hw) {
  const WorkloadSpec& w = plan.spec().workload;
  const double bandwidth = hw.memory_GBps * 1e9 * hw.memory_efficiency;
  // Decode attention reads the KV cache at the memory's rate at best; its work grows with the
  // query heads that read each KV row: the measured rate at `attention_group` query heads per KV
  // head, as query-head bytes per second.
  const double query_rate = hw.attention_GBps > 0 ? hw.attention_GBps * 1e9 * hw.attention_group : 0;
  const double eager_kernel_s = (hw.eager_kernel_us > 0 ? hw.eager_kernel_us : 3 * hw.kernel_overhead_us) * 1e-6;

  Prediction p;
  double compute_prefill = 0, compute_decode = 0;
  bool eager_decode = false;
  for (const RankCost& r : plan.ranks) {
    // Decode reads the weights its GEMMs multiply (at the rate a GEMM of that many rows reads
    // them) and the KV cache (at decode attention's rate); prefill reads every weight once and
    // does its FLOPs at the rate of a GEMM of the prompt's rows.
    const int64_t rows = std::max<int64_t>(r.decode_rows, 1);
    const double attention_s = std::max(static_cast<double>(r.kv_cache_bytes) / bandwidth,
                                        query_rate > 0 ? static_cast<double>(r.kv_query_bytes) / query_rate : 0.0);
    const double decode_memory = static_cast<double>(r.decode_weight_bytes) / weight_read_rate(hw, rows) + attention_s;
    const double decode_math = r.flops_decode / matmul_rate(hw, rows);
    // The prompt's rows: its text and its images' tokens.
    const int64_t prefill_rows =
        rows * std::max<int64_t>(w.prompt_tokens + w.images_per_request * plan.graph().workload.tokens_per_image, 1);
    const double prefill_memory = static_cast<double>(r.weight_bytes) / bandwidth;
    const double prefill_math = r.flops_prefill / matmul_rate(hw, prefill_rows);
    compute_decode = std::max(compute_decode, std::max(decode_memory, decode_math));
    compute_prefill = std::max(compute_prefill, std::max(prefill_memory, prefill_math));
    p.memory_bytes = std::max(p.memory_bytes, r.memory_bytes());  // the model of planner/plan/cost.h
    eager_decode = eager_decode || r.decode_eager;
  }
  double comm_prefill = 0, comm_decode = 0;
  for (const Collective& c : plan.comms) {
    const int64_t ranks = c.groups.empty() ? 1 : static_cast<int64_t>(c.groups.front().size());
    const std::string op = to_string(c.op);
    // (No bytes: the collective does not run in that phase, e.g. an encoder's in decode.)
    if (c.bytes_prefill > 0) comm_prefill += collective_seconds(hw, op, ranks, c.bytes_prefill);
    if (c.bytes_decode > 0) comm_decode += collective_seconds(hw, op, ranks, c.bytes_decode);
    p.comm_bytes_decode += c.bytes_decode;
  }
  // Kernels besides the GEMMs: replayed from a CUDA graph in decode, launched one by one in the
  // prefill and in a decode the executor cannot capture (sparse MoE routing, expert exchange).
  const double kernels = static_cast<double>(plan.modules.size()) * hw.kernels_per_module;
  const double decode_overhead = kernels * (eager_decode ? eager_kernel_s : hw.kernel_overhead_us * 1e-6);
  const double prefill_overhead = kernels * eager_kernel_s;
  p.ttft_ms = (compute_prefill + comm_prefill + prefill_overhead) * 1e3;
  p.decode_ms = (compute_decode + comm_decode + decode_overhead) * 1e3;
  const double total_s = p.ttft_ms / 1e3 + static_cast<double>(std::max<int64_t>(w.new_tokens - 1, 0)) * p.decode_ms / 1e3;
  p.tokens_per_s = total_s > 0 ? static_cast<double>(w.batch * w.new_tokens) / total_s : 0;
  p.tokens_per_s_per_gpu = p.tokens_per_s / static_cast<double>(plan.world_size());
  p.tokens_per_s_per_request = p.decode_ms > 0 ? 1e3 / p.decode_ms : 0;
  p.fits = p.memory_bytes <= usable_memory_bytes(hw);
  return p;
}

SweepResult run_sweep(const SweepOptions& o) {
  const ModelGraph graph = load_model_graph(o.config_path);
  const bool images = graph.workload.tokens_per_image > 0;
  const std::string config_abs = std::filesystem::absolute(o.config_path).string();
  std::filesystem::create_directories(o.scratch_dir);
  bool experts = false;
  for (const Module& mod : graph.modules) experts = experts || mod.kind == ModuleKind::kMoe;

  // Every mesh dp x ep x tp = world and every choice per group over it.
  struct Pending {
    std::string name, yaml;
  };
  std::vector<Pending> pending;
  for (int64_t dp = 1; dp <= o.world; ++dp) {
    for (int64_t ep = 1; ep <= o.world / dp; ++ep) {
      if (o.world % (dp * ep) != 0 || (ep > 1 && !experts)) continue;
      const MeshShape mesh{dp, ep, o.world / (dp * ep)};
      const std::vector<std::vector<Choice>> groups = choice_groups(graph, mesh);
      std::vector<size_t> index(groups.size(), 0);
      while (true) {
        std::vector<const Choice*> picks;
        std::vector<std::string> labels;
        for (size_t g = 0; g < groups.size(); ++g) {
          picks.push_back(&groups[g][index[g]]);
          labels.push_back(groups[g][index[g]].label);
        }
        if (mesh.tp == 1) labels.push_back(labels.empty() ? "every module replicated" : "the rest replicated");
        const std::string name = mesh.name() + ": " + join(labels, ", ");
        pending.push_back({name, spec_yaml(name, o, mesh, picks, images)});
        size_t g = 0;
        while (g < groups.size() && ++index[g] == groups[g].size()) index[g++] = 0;
        if (g == groups.size()) break;
      }
    }
  }

  SweepResult result;
  int64_t done = 0;
  for (const Pending& c : pending) {
    ++result.generated;
    const std::string file = (std::filesystem::path(o.scratch_dir) / ("candidate-" + std::to_string(done) + ".yaml")).string();
    std::ofstream(file) << replace_all(c.yaml, kConfigPlaceholder, config_abs);
    Diagnostics diags;
    CheckedSpec checked;
    if (check_spec_file(file, diags, &checked) != CheckOutcome::kValid) {
      ++result.invalid;
    } else {
      const std::unique_ptr<Plan> plan = build_plan(std::move(checked));
      check_executable(*plan, diags);
      if (diags.has_errors()) {
        ++result.invalid;
      } else {
        SweepCandidate candidate;
        candidate.name = c.name;
        candidate.yaml = replace_all(c.yaml, kConfigPlaceholder, o.config_ref.empty() ? config_abs : o.config_ref);
        candidate.prediction = predict(*plan, o.hardware);
        candidate.world = o.world;
        if (candidate.prediction.fits) {
          result.ranked.push_back(std::move(candidate));
        } else {
          ++result.too_large;
        }
      }
    }
    std::filesystem::remove(file);
    if (o.progress) o.progress(++done, static_cast<int64_t>(pending.size()));
  }
  std::stable_sort(result.ranked.begin(), result.ranked.end(), [](const SweepCandidate& a, const SweepCandidate& b) {
    return a.prediction.tokens_per_s > b.prediction.tokens_per_s;
  });
  return result;
}

std::string sweep_table_text(const SweepResult& r, int64_t top) {
  std::ostringstream out;
  out << r.generated << " candidates: " << r.ranked.size() << " valid and within memory, " << r.invalid
      << " refused by planner check, " << r.too_large << " too large for the device\n";
  out << std::left << std::setw(5) << "rank" << std::setw(11) << "ttft ms" << std::setw(11) << "decode ms"
      << std::setw(12) << "tokens/s" << std::setw(11) << "tok/s/GPU" << std::setw(11) << "tok/s/req"
      << std::setw(11) << "mem GiB" << std::setw(13) << "comm MiB/step" << "plan\n";
  for (int64_t i = 0; i < std::min<int64_t>(top, static_cast<int64_t>(r.ranked.size())); ++i) {
    const Prediction& p = r.ranked[i].prediction;
    out << std::left << std::setw(5) << i + 1 << std::setw(11) << fixed(p.ttft_ms, 1) << std::setw(11)
        << fixed(p.decode_ms, 3) << std::setw(12) << fixed(p.tokens_per_s, 0) << std::setw(11)
        << fixed(p.tokens_per_s_per_gpu, 0) << std::setw(11) << fixed(p.tokens_per_s_per_request, 1) << std::setw(11)
        << fixed(static_cast<double>(p.memory_bytes) / (1 << 30), 1) << std::setw(13)
        << fixed(static_cast<double>(p.comm_bytes_decode) / (1 << 20), 2) << r.ranked[i].name << "\n";
  }
  return out.str();
}

std::string sweep_table_csv(const SweepResult& r, int64_t top) {
  std::ostringstream out;
  out << "rank,plan,ttft_ms,decode_ms,tokens_per_s,tokens_per_s_per_gpu,tokens_per_s_per_request,memory_bytes,"
         "comm_bytes_decode\n";
  for (int64_t i = 0; i < std::min<int64_t>(top, static_cast<int64_t>(r.ranked.size())); ++i) {
    const Prediction& p = r.ranked[i].prediction;
    out << i + 1 << ",\"" << r.ranked[i].name << "\"," << p.ttft_ms << "," << p.decode_ms << "," << p.tokens_per_s
        << "," << p.tokens_per_s_per_gpu << "," << p.tokens_per_s_per_request << "," << p.memory_bytes << ","
        << p.comm_bytes_decode << "\n";
  }
  return out.str();
}

std::string sweep_json(const SweepResult& r, int64_t top, const SweepOptions& o) {
  nlohmann::json j;
  j["config"] = o.config_path;
  j["world"] = o.world;
  j["hardware"] = o.hardware.name;
  j["workload"] = {{"batch", o.workload.batch}, {"prompt_tokens", o.workload.prompt_tokens},
                   {"new_tokens", o.workload.new_tokens}, {"images_per_request", o.workload.images_per_request}};
  j["candidates"] = r.generated;
  j["invalid"] = r.invalid;
  j["too_large"] = r.too_large;
  j["ranked"] = nlohmann::json::array();
  for (int64_t i = 0; i < std::min<int64_t>(top, static_cast<int64_t>(r.ranked.size())); ++i) {
    const Prediction& p = r.ranked[i].prediction;
    j["ranked"].push_back({{"rank", i + 1}, {"plan", r.ranked[i].name}, {"ttft_ms", p.ttft_ms},
                           {"decode_ms", p.decode_ms}, {"tokens_per_s", p.tokens_per_s},
                           {"tokens_per_s_per_gpu", p.tokens_per_s_per_gpu},
                           {"tokens_per_s_per_request", p.tokens_per_s_per_request},
                           {"memory_bytes", p.memory_bytes}, {"comm_bytes_decode", p.comm_bytes_decode}});
  }
  return j.dump(1) + "\n";
}

std::string sweep_pareto_svg(const SweepResult& r, int64_t top, const std::string& title) {
  const int width = 760, height = 480, left = 80, right = 30, top_margin = 50, bottom = 60;
  double max_x = 1, max_y = 1;
  for (const SweepCandidate& c : r.ranked) {
    max_x = std::max(max_x, c.prediction.tokens_per_s_per_request);
    max_y = std::max(max_y, c.prediction.tokens_per_s_per_gpu);
  }
  max_x *= 1.1;
  max_y *= 1.1;
  const auto px = [&](double x) { return left + (width - left - right) * x / max_x; };
  const auto py = [&](double y) { return height - bottom - (height - top_margin - bottom) * y / max_y; };
  // The frontier: no other plan is better on both axes.
  std::vector<const SweepCandidate*> frontier;
  for (const SweepCandidate& c : r.ranked) {
    bool dominated = false;
    for (const SweepCandidate& o : r.ranked) {
      if (&o != &c && o.prediction.tokens_per_s_per_request >= c.prediction.tokens_per_s_per_request &&
          o.prediction.tokens_per_s_per_gpu >= c.prediction.tokens_per_s_per_gpu &&
          (o.prediction.tokens_per_s_per_request > c.prediction.tokens_per_s_per_request ||
           o.prediction.tokens_per_s_per_gpu > c.prediction.tokens_per_s_per_gpu)) {
        dominated = true;
        break;
      }
    }
    if (!dominated) frontier.push_back(&c);
  }
  std::sort(frontier.begin(), frontier.end(), [](const SweepCandidate* a, const SweepCandidate* b) {
    return a->prediction.tokens_per_s_per_request < b->prediction.tokens_per_s_per_request;
  });
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"" << width << "\" height=\"" << height
    << "\" fill=\"white\"/>\n<text x=\"" << left << "\" y=\"24\" font-size=\"14\" font-weight=\"bold\">" << title
    << "</text>\n<text x=\"" << left << "\" y=\"40\" fill=\"#555\">predicted; every valid plan a point, the Pareto "
       "frontier in orange, the top " << top << " numbered</text>\n";
  s << "<line x1=\"" << left << "\" y1=\"" << height - bottom << "\" x2=\"" << width - right << "\" y2=\""
    << height - bottom << "\" stroke=\"black\"/>\n<line x1=\"" << left << "\" y1=\"" << top_margin << "\" x2=\""
    << left << "\" y2=\"" << height - bottom << "\" stroke=\"black\"/>\n";
  s << "<text x=\"" << (left + width - right) / 2 << "\" y=\"" << height - 20
    << "\" text-anchor=\"middle\">tokens/s per request (1000 / decode ms)</text>\n";
  s << "<text x=\"20\" y=\"" << (top_margin + height - bottom) / 2 << "\" transform=\"rotate(-90 20 "
    << (top_margin + height - bottom) / 2 << ")\" text-anchor=\"middle\">tokens/s per GPU</text>\n";
  for (int t = 0; t <= 4; ++t) {
    s << "<text x=\"" << px(max_x * t / 4) << "\" y=\"" << height - bottom + 16 << "\" text-anchor=\"middle\">"
      << fixed(max_x * t / 4, 0) << "</text>\n<text x=\"" << left - 6 << "\" y=\"" << py(max_y * t / 4) + 4
      << "\" text-anchor=\"end\">" << fixed(max_y * t / 4, 0) << "</text>\n";
  }
  std::string path;
  for (const SweepCandidate* c : frontier) {
    path += (path.empty() ? "M" : " L") + fixed(px(c->prediction.tokens_per_s_per_request), 1) + " " +
            fixed(py(c->prediction.tokens_per_s_per_gpu), 1);
  }
  if (!path.empty()) s << "<path d=\"" << path << "\" fill=\"none\" stroke=\"#dd6b20\" stroke-width=\"2\"/>\n";
  for (size_t i = 0; i < r.ranked.size(); ++i) {
    const Prediction& p = r.ranked[i].prediction;
    s << "<circle cx=\"" << fixed(px(p.tokens_per_s_per_request), 1) << "\" cy=\"" << fixed(py(p.tokens_per_s_per_gpu), 1)
      << "\" r=\"4\" fill=\"" << (static_cast<int64_t>(i) < top ? "#2b6cb0" : "#a0aec0") << "\"/>\n";
    if (static_cast<int64_t>(i) < top) {
      s << "<text x=\"" << fixed(px(p.tokens_per_s_per_request) + 6, 1) << "\" y=\""
        << fixed(py(p.tokens_per_s_per_gpu) - 6, 1) << "\">" << i + 1 << "</text>\n";
    }
  }
  s << "</svg>\n";
  return s.str();
}

}  // namespace shardplan
