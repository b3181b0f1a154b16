// Planner benchmarks (Google Benchmark): `planner check` of every shipped spec, and planning
// large models in memory (Llama-3-70B and Mixtral-8x7B on 64 ranks, a synthetic DeepSeek-V3-sized
// MoE on 256 ranks). scripts/bench.sh builds and runs them and draws build/bench/bench.svg.
//
// Every timed benchmark also reports its time as a ratio against a reference measured in the
// same process, just before its own loop (project rule: numbers as ratios against a reference
// of the same run), so figures from a loaded or a faster machine still compare. Both sides of a
// ratio are thread CPU time: on a shared machine wall time mostly measures the other tenants.
//   check/<spec>: x_yaml_parse   = check_spec_file / parsing the spec's YAML text alone
//   plan/<spec>:  x_model_graph  = build_plan / building the model graph from its config.json
//   sweep/<config>-w<N>: x_model_graph = run_sweep (every candidate checked, bound, predicted)
//                  / building the model graph
// Targets (docs/benchmarks.md): check < 50 ms per spec, plan < 100 ms on 64 ranks, the
// DeepSeek-V3-sized plan < 1 s; `planner sweep` of Llama-3-70B and Mixtral-8x7B on 8 GPUs and
// llava-1.5-7b on 4 < 1 s, the DeepSeek-V3-sized MoE on 64 < 10 s; each benchmark reports its
// target as `target_ms`.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/graph/registry.h"
#include "planner/plan/binding.h"
#include "planner/plan/plan.h"
#include "planner/render/graphviz_render.h"
#include "planner/render/plan_dot.h"
#include "planner/spec/assignment.h"
#include "planner/spec/diagnostic.h"
#include "planner/spec/spec_check.h"
#include "planner/spec/yaml_document.h"
#include "planner/sweep/sweep.h"

namespace shardplan {
namespace {

// CPU time of the calling thread, in seconds.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Median CPU seconds of `reps` runs of fn (after one warm-up run).
template <typename Fn>
double median_seconds(int reps, Fn&& fn) {
  fn();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const double start = thread_cpu_seconds();
    fn();
    t.push_back(thread_cpu_seconds() - start);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

CheckedSpec checked_or_throw(const std::string& file) {
  Diagnostics diags;
  CheckedSpec checked;
  if (check_spec_file(file, diags, &checked) != CheckOutcome::kValid) {
    std::string msg = file + " is not a valid spec:";
    for (const auto& d : diags.all()) msg += "\n  " + format_diagnostic(d);
    throw std::runtime_error(msg);
  }
  return checked;
}

// `planner check SPEC`: read, YAML, schema, config, semantic checks.
void bm_check(benchmark::State& state, const std::string& file) {
  const std::string text = read_text(file);
  const double yaml_s = median_seconds(21, [&] {
    Diagnostics diags;
    benchmark::DoNotOptimize(parse_yaml_document(text, file, diags));
  });
  double total = 0;
  for (auto _ : state) {
    const double start = thread_cpu_seconds();
    Diagnostics diags;
    CheckedSpec checked;
    const CheckOutcome outcome = check_spec_file(file, diags, &checked);
    benchmark::DoNotOptimize(outcome);
    total += thread_cpu_seconds() - start;
    if (outcome != CheckOutcome::kValid) {
      state.SkipWithError("spec is not valid");
      break;
    }
  }
  const double per_iter = total / std::max<int64_t>(state.iterations(), 1);
  state.counters["yaml_parse_ms"] = yaml_s * 1e3;
  state.counters["x_yaml_parse"] = per_iter / yaml_s;
  state.counters["target_ms"] = 50;
}

// The YAML parse alone (the reference of bm_check), for the JSON output.
void bm_yaml_parse(benchmark::State& state, const std::string& file) {
  const std::string text = read_text(file);
  for (auto _ : state) {
    Diagnostics diags;
    benchmark::DoNotOptimize(parse_yaml_document(text, file, diags));
  }
}

// build_plan on a checked spec in memory: layouts and slices of every tensor, derived
// collectives, costs. The copy of the checked spec it consumes is made outside the timing.
void bm_plan(benchmark::State& state, const std::string& file, double target_ms) {
  const CheckedSpec source = checked_or_throw(file);
  const std::string config = source.spec.config_path;
  const double graph_s = median_seconds(11, [&] { benchmark::DoNotOptimize(load_model_graph(config)); });
  double total = 0;
  int64_t params = 0, comms = 0;
  for (auto _ : state) {
    state.PauseTiming();
    CheckedSpec checked;
    checked.spec = source.spec;
    checked.graph = source.graph;
    checked.assignment = assign_modules(checked.spec, checked.graph);
    state.ResumeTiming();
    const double start = thread_cpu_seconds();
    std::unique_ptr<Plan> plan = build_plan(std::move(checked));
    total += thread_cpu_seconds() - start;
    state.PauseTiming();
    params = static_cast<int64_t>(plan->params.size());
    comms = static_cast<int64_t>(plan->comms.size());
    plan.reset();
    state.ResumeTiming();
  }
  const double per_iter = total / std::max<int64_t>(state.iterations(), 1);
  state.counters["model_graph_ms"] = graph_s * 1e3;
  state.counters["x_model_graph"] = per_iter / graph_s;
  state.counters["target_ms"] = target_ms;
  state.counters["tensors"] = static_cast<double>(params);
  state.counters["collectives"] = static_cast<double>(comms);
}

// A plan of `source` built anew (CheckedSpec is not copyable: its members are, the assignment is
// made against the copy's graph).
std::unique_ptr<Plan> plan_of(const CheckedSpec& source) {
  CheckedSpec checked;
  checked.spec = source.spec;
  checked.graph = source.graph;
  checked.assignment = assign_modules(checked.spec, checked.graph);
  return build_plan(std::move(checked));
}

// check_executable on a built plan: the plan bound for every rank, as `planner check` does after
// the spec's checks. Reported against build_plan of the same spec (x_build_plan).
void bm_bind(benchmark::State& state, const std::string& file, double target_ms) {
  const CheckedSpec source = checked_or_throw(file);
  const auto fresh = [&] { return plan_of(source); };
  const double plan_s = median_seconds(3, [&] { benchmark::DoNotOptimize(fresh()); });
  const std::unique_ptr<Plan> plan = fresh();
  double total = 0;
  for (auto _ : state) {
    Diagnostics diags;
    const double start = thread_cpu_seconds();
    check_executable(*plan, diags);
    total += thread_cpu_seconds() - start;
    if (diags.has_errors()) throw std::runtime_error(file + ": the plan does not bind");
  }
  const double per_iter = total / std::max<int64_t>(state.iterations(), 1);
  state.counters["build_plan_ms"] = plan_s * 1e3;
  state.counters["x_build_plan"] = per_iter / plan_s;
  state.counters["target_ms"] = target_ms;
  state.counters["ranks"] = static_cast<double>(plan->world_size());
}

// A shipped spec's plan drawn as SVG (plan_to_dot and Graphviz in-process), against building the
// plan (x_build_plan). Target: under 1 s per picture.
void bm_render(benchmark::State& state, const std::string& file) {
  const CheckedSpec source = checked_or_throw(file);
  const auto fresh = [&] { return plan_of(source); };
  const double plan_s = median_seconds(3, [&] { benchmark::DoNotOptimize(fresh()); });
  const std::unique_ptr<Plan> plan = fresh();
  double total = 0;
  for (auto _ : state) {
    const double start = thread_cpu_seconds();
    benchmark::DoNotOptimize(render_dot(plan_to_dot(*plan, DotOptions{}), ImageFormat::kSvg));
    total += thread_cpu_seconds() - start;
  }
  const double per_iter = total / std::max<int64_t>(state.iterations(), 1);
  state.counters["build_plan_ms"] = plan_s * 1e3;
  state.counters["x_build_plan"] = per_iter / plan_s;
  state.counters["target_ms"] = 1000;
}

// `planner sweep` of a model on `world` GPUs (the default workload, the H200 preset): every
// candidate spec written, checked, planned, bound and predicted, as the CLI does.
void bm_sweep(benchmark::State& state, const std::string& config, int64_t world, double target_ms) {
  const double graph_s = median_seconds(5, [&] { benchmark::DoNotOptimize(load_model_graph(config)); });
  SweepOptions o;
  o.config_path = config;
  o.world = world;
  o.hardware = load_hardware("h200");
  o.scratch_dir = (std::filesystem::temp_directory_path() / ("shardplan-bench-sweep-" + std::to_string(world))).string();
  double total = 0;
  int64_t candidates = 0;
  for (auto _ : state) {
    const double start = thread_cpu_seconds();
    const SweepResult r = run_sweep(o);
    total += thread_cpu_seconds() - start;
    candidates = r.generated;
  }
  std::error_code ignored;
  std::filesystem::remove_all(o.scratch_dir, ignored);
  const double per_iter = total / std::max<int64_t>(state.iterations(), 1);
  state.counters["model_graph_ms"] = graph_s * 1e3;
  state.counters["x_model_graph"] = per_iter / graph_s;
  state.counters["target_ms"] = target_ms;
  state.counters["candidates"] = static_cast<double>(candidates);
}

// Building the model graph from config.json (the reference of bm_plan), for the JSON output.
void bm_model_graph(benchmark::State& state, const std::string& config) {
  for (auto _ : state) benchmark::DoNotOptimize(load_model_graph(config));
}

std::vector<std::string> yaml_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".yaml") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string stem(const std::string& path) { return std::filesystem::path(path).stem().string(); }

void register_all() {
  const std::string root = SHARDPLAN_SOURCE_DIR;
  std::vector<std::string> check_specs = yaml_files(root + "/specs");
  for (const auto& f : yaml_files(root + "/bench/data")) check_specs.push_back(f);
  // Grouped by kind, so the tabular console output has one header per group.
  for (const auto& f : check_specs) {
    benchmark::RegisterBenchmark(("yaml_parse/" + stem(f)).c_str(), bm_yaml_parse, f)
        ->Unit(benchmark::kMillisecond);
  }
  for (const auto& f : check_specs) {
    benchmark::RegisterBenchmark(("check/" + stem(f)).c_str(), bm_check, f)
        ->Unit(benchmark::kMillisecond);
  }
  struct PlanCase {
    const char* spec;
    double target_ms;
  };
  const PlanCase plans[] = {
      {"llama-3-70b-dp8-tp8", 100},          // 64 ranks
      {"mixtral-8x7b-dp8-ep8", 100},         // 64 ranks, tokens replicated over ep
      {"mixtral-8x7b-dp8-attn-dp-ep8", 100}, // 64 ranks, all_to_all over ep
      {"deepseek-v3-ep256", 1000},           // 256 ranks, 256 experts
  };
  for (const PlanCase& p : plans) {
    const std::string file = root + "/bench/data/" + p.spec + ".yaml";
    benchmark::RegisterBenchmark((std::string("plan/") + p.spec).c_str(), bm_plan, file,
                                 p.target_ms)
        ->Unit(benchmark::kMillisecond);
  }
  for (const PlanCase& p : plans) {
    const std::string file = root + "/bench/data/" + p.spec + ".yaml";
    benchmark::RegisterBenchmark((std::string("bind/") + p.spec).c_str(), bm_bind, file, p.target_ms)
        ->Unit(benchmark::kMillisecond);
  }
  for (const auto& f : yaml_files(root + "/specs")) {
    benchmark::RegisterBenchmark(("render/" + stem(f)).c_str(), bm_render, f)->Unit(benchmark::kMillisecond);
  }
  struct SweepCase {
    const char* config;
    int64_t world;
    double target_ms;
  };
  for (const SweepCase& c : {SweepCase{"models/configs/llama-3-70b.json", 8, 1000},
                             SweepCase{"models/configs/mixtral-8x7b.json", 8, 1000},
                             SweepCase{"models/configs/llava-1.5-7b.json", 4, 1000},
                             SweepCase{"bench/data/deepseek-v3-synthetic.json", 64, 10000}}) {
    benchmark::RegisterBenchmark(("sweep/" + stem(c.config) + "-w" + std::to_string(c.world)).c_str(), bm_sweep,
                                 root + "/" + c.config, c.world, c.target_ms)
        ->Unit(benchmark::kMillisecond)
        ->Iterations(c.world > 8 ? 1 : 3);
  }
  for (const char* config : {"models/configs/llama-3-70b.json", "models/configs/mixtral-8x7b.json",
                             "bench/data/deepseek-v3-synthetic.json"}) {
    benchmark::RegisterBenchmark(("model_graph/" + stem(config)).c_str(), bm_model_graph,
                                 root + "/" + config)
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace
}  // namespace shardplan

int main(int argc, char** argv) {
  shardplan::register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
