// planner: check, plan and render sharding specs (spec-format.md §4).
// Exit codes: 0 valid / done; 1 the spec is invalid; 2 usage or I/O error.
#include <CLI/CLI.hpp>

#include <cctype>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/progress.h"
#include "planner/io/output_file.h"
#include "planner/plan/binding.h"
#include "planner/plan/plan.h"
#include "planner/plan/plan_json.h"
#include "planner/plan/plan_text.h"
#include "planner/render/graphviz_render.h"
#include "planner/render/plan_dot.h"
#include "planner/render/render_error.h"
#include "planner/spec/spec_check.h"
#include "planner/sweep/memory_check.h"
#include "planner/sweep/sweep.h"

#include <unistd.h>

#include <filesystem>

namespace shardplan {
namespace {

void print_diagnostics(const Diagnostics& diags) {
  for (const Diagnostic& d : diags.all()) std::cerr << format_diagnostic(d) << "\n";
}

nlohmann::json diagnostics_json(const Diagnostics& diags) {
  nlohmann::json out = nlohmann::json::array();
  for (const Diagnostic& d : diags.all()) {
    out.push_back({{"file", d.file},
                   {"line", d.pos.line},
                   {"column", d.pos.column},
                   {"severity", d.severity == Severity::kError ? "error" : "warning"},
                   {"message", d.message}});
  }
  return out;
}

std::string summary(const std::string& file, const Plan& plan) {
  std::string mesh;
  for (const auto& a : plan.spec().mesh) mesh += (mesh.empty() ? "" : ", ") + a.name + ": " + std::to_string(a.size);
  const ModelGraph& g = plan.graph();
  return file + ": ok: " + g.model_type + ", " + std::to_string(g.modules.size()) + " modules, " +
         std::to_string(g.num_parameters()) + " parameters, mesh {" + mesh + "} (" +
         std::to_string(plan.world_size()) + " ranks)";
}

// Checks one spec, then builds its plan and binds it for every rank (check_executable): what
// check passes, the executor runs. Diagnostics (sorted) are appended to `all`; `plan` is set when
// the spec is valid.
// With a device (`--hardware`, else the spec's `hardware`), every rank's memory must fit it
// (memory_check.h); `hardware_out` gets it.
CheckOutcome check_one(const std::string& file, Diagnostics& all, std::unique_ptr<Plan>* plan,
                       const std::optional<Hardware>& cli_hardware = std::nullopt,
                       std::optional<Hardware>* hardware_out = nullptr) {
  Diagnostics diags;
  CheckedSpec checked;
  CheckOutcome outcome = check_spec_file(file, diags, &checked);
  if (outcome == CheckOutcome::kValid) {
    *plan = build_plan(std::move(checked));
    check_executable(**plan, diags);
    const Spec& spec = (*plan)->spec();
    std::optional<Hardware> hardware = cli_hardware;
    if (!hardware && spec.hardware && !diags.has_errors()) {
      try {
        hardware = load_hardware(*spec.hardware);
      } catch (const HardwareError& e) {
        diags.error(file, spec.hardware_pos, e.what());
      }
    }
    if (hardware && !diags.has_errors()) {
      check_memory(**plan, *hardware, spec.hardware ? spec.hardware_pos : spec.workload.batch_pos, diags);
    }
    if (hardware_out) *hardware_out = hardware;
    if (diags.has_errors()) {
      outcome = CheckOutcome::kInvalid;
      plan->reset();
    }
  }
  diags.sort();
  for (const auto& d : diags.all()) all.add(d);
  return outcome;
}

int exit_code(CheckOutcome o) {
  switch (o) {
    case CheckOutcome::kValid: return kExitOk;
    case CheckOutcome::kInvalid: return kExitInvalid;
    case CheckOutcome::kIoError: return kExitUsage;
  }
  return kExitUsage;
}

// `--hardware` of check and plan: a preset or file; HardwareError (exit 2) when it is neither.
std::optional<Hardware> cli_hardware(const std::string& name) {
  if (name.empty()) return std::nullopt;
  return load_hardware(name);
}

int run_check(const std::vector<std::string>& files, const std::string& format, const std::string& hardware_name) {
  Diagnostics all;
  int worst = kExitOk;
  std::vector<std::string> summaries;
  std::optional<Hardware> given;
  try {
    given = cli_hardware(hardware_name);
  } catch (const HardwareError& e) {
    std::cerr << "planner: error: --hardware: " << e.what() << "\n";
    return kExitUsage;
  }
  for (const auto& f : files) {
    std::unique_ptr<Plan> plan;
    std::optional<Hardware> hardware;
    const CheckOutcome o = check_one(f, all, &plan, given, &hardware);
    worst = std::max(worst, exit_code(o));
    if (o == CheckOutcome::kValid) {
      summaries.push_back(summary(f, *plan) + (hardware ? "; " + memory_summary(*plan, *hardware) : ""));
    }
  }
  if (format == "json") {
    std::cout << diagnostics_json(all).dump(2) << "\n";
  } else {
    print_diagnostics(all);
    for (const auto& s : summaries) std::cout << s << "\n";
  }
  return worst;
}

int run_plan(const std::string& file, const std::string& format, const std::string& output,
             const std::string& hardware_name) {
  Diagnostics all;
  std::unique_ptr<Plan> plan;
  std::optional<Hardware> given, hardware;
  try {
    given = cli_hardware(hardware_name);
  } catch (const HardwareError& e) {
    std::cerr << "planner: error: --hardware: " << e.what() << "\n";
    return kExitUsage;
  }
  const CheckOutcome o = check_one(file, all, &plan, given, &hardware);
  print_diagnostics(all);
  if (o != CheckOutcome::kValid) return exit_code(o);
  std::string text;
  if (format == "json") {
    nlohmann::json j = plan_to_json(*plan);
    if (hardware) {
      j["memory"]["device"] = {{"name", hardware->name}, {"usable_bytes", usable_memory_bytes(*hardware)}};
    }
    text = j.dump(1) + "\n";
  } else {
    text = plan_to_text(*plan) + (hardware ? "  " + memory_summary(*plan, *hardware) + "\n" : "");
  }
  if (output.empty() || output == "-") {
    std::cout << text;
    return kExitOk;
  }
  const std::string failure = write_output_file(output, text, {file});
  if (!failure.empty()) {
    std::cerr << "planner: error: cannot write '" << output << "': " << failure << "\n";
    return kExitUsage;
  }
  return kExitOk;
}

// The extension of a file name, lower case: "plan.SVG" -> "svg"; "" when it has none.
std::string extension_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  const auto dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string ext = path.substr(dot + 1);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

// Checks, before any work: the output's extension names a format this build writes; --layer
// goes with the ranks view. Then: the spec is valid, the view fits the plan, Graphviz renders it.
int run_render(const std::string& file, const std::string& output, const std::string& view,
               const std::optional<int>& layer) {
  const std::string ext = extension_of(output);
  const std::optional<ImageFormat> image = parse_image_format(ext);
  if (ext != "dot" && !image) {
    std::cerr << "planner: error: cannot tell the picture format from '" << output
              << "': the output must end in .svg, .png or .dot\n";
    return kExitUsage;
  }
  if (image == ImageFormat::kPng && !png_supported()) {
    std::cerr << "planner: error: cannot write '" << output
              << "': PNG needs Graphviz's cairo renderer (gvplugin_pango), which this build was "
                 "made without; write .svg or .dot instead\n";
    return kExitUsage;
  }
  DotOptions options;
  options.view = *parse_plan_view(view);
  options.layer = layer;
  if (options.layer && options.view != PlanView::kRanks) {
    std::cerr << "planner: error: --layer applies to the ranks view only (--view ranks)\n";
    return kExitUsage;
  }

  Diagnostics all;
  std::unique_ptr<Plan> plan;
  const CheckOutcome o = check_one(file, all, &plan);
  print_diagnostics(all);
  if (o != CheckOutcome::kValid) return exit_code(o);
  std::string bytes;
  try {
    bytes = plan_to_dot(*plan, options);
    if (image) {
      RenderedImage rendered = render_dot(bytes, *image);
      for (const auto& w : rendered.warnings) {
        std::cerr << "planner: warning: graphviz: " << w << "\n";
      }
      bytes = std::move(rendered.bytes);
    }
  } catch (const RenderError& e) {
    std::cerr << "planner: error: " << e.what() << "\n";
    return e.exit_code();
  }
  const std::string failure = write_output_file(output, bytes, {file});
  if (!failure.empty()) {
    std::cerr << "planner: error: cannot write '" << output << "': " << failure << "\n";
    return kExitUsage;
  }
  return kExitOk;
}

struct SweepCli {
  std::string config, hardware = "h200", output, dtype = "bfloat16";
  int64_t world = 0, top = 10;
  SweepWorkload workload;
};

// `planner sweep`: candidates checked and predicted, the top ones printed; with -o DIR, their specs
// (rank-01.yaml, ...), the table as text, CSV and JSON, and the Pareto chart written there.
int run_sweep_command(const SweepCli& cli) {
  SweepOptions o;
  o.config_path = cli.config;
  o.world = cli.world;
  o.workload = cli.workload;
  o.dtype = cli.dtype;
  o.hardware = load_hardware(cli.hardware);
  const std::filesystem::path scratch =
      std::filesystem::temp_directory_path() / ("shardplan-sweep-" + std::to_string(::getpid()));
  o.scratch_dir = scratch.string();
  if (!cli.output.empty()) {
    std::filesystem::create_directories(cli.output);
    o.config_ref = std::filesystem::relative(std::filesystem::absolute(cli.config), std::filesystem::absolute(cli.output))
                       .string();
  }
  // Progress: a bar on a terminal, a line per tenth otherwise.
  std::unique_ptr<Progress> progress;
  o.progress = [&](int64_t done, int64_t total) {
    if (!progress) progress = std::make_unique<Progress>("planner sweep", total, "candidates checked");
    progress->update(done);
  };
  SweepResult result;
  try {
    result = run_sweep(o);
  } catch (...) {
    std::filesystem::remove_all(scratch);
    throw;
  }
  std::filesystem::remove_all(scratch);
  const std::string table = sweep_table_text(result, cli.top);
  std::cout << table;
  if (cli.output.empty()) return result.ranked.empty() ? kExitInvalid : kExitOk;
  const std::filesystem::path dir(cli.output);
  const auto write = [&](const std::string& name, const std::string& bytes) {
    const std::string failure = write_output_file((dir / name).string(), bytes);
    if (!failure.empty()) throw ConfigError("cannot write '" + (dir / name).string() + "': " + failure);
  };
  for (int64_t i = 0; i < std::min<int64_t>(cli.top, static_cast<int64_t>(result.ranked.size())); ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "rank-%02lld.yaml", static_cast<long long>(i + 1));
    write(name, result.ranked[i].yaml);
  }
  write("sweep.txt", table);
  write("sweep.csv", sweep_table_csv(result, cli.top));
  write("sweep.json", sweep_json(result, cli.top, o));
  const std::string title = std::filesystem::path(cli.config).stem().string() + " on " + std::to_string(cli.world) +
                            " x " + o.hardware.name + ", batch " + std::to_string(cli.workload.batch);
  write("pareto.svg", sweep_pareto_svg(result, cli.top, title));
  std::cerr << "planner sweep: wrote the top " << std::min<int64_t>(cli.top, static_cast<int64_t>(result.ranked.size()))
            << " specs, sweep.txt, sweep.csv, sweep.json and pareto.svg to " << cli.output << "\n";
  return result.ranked.empty() ? kExitInvalid : kExitOk;
}

int main_impl(int argc, char** argv) {
  CLI::App app{"planner: check, plan and render declarative sharding specs"};
  app.set_version_flag("--version", std::string("planner (shardplan) ") + SHARDPLAN_VERSION);
  app.require_subcommand(1);

  std::vector<std::string> check_files;
  std::string check_format = "text";
  auto* check = app.add_subcommand("check", "validate specs; one summary line per valid spec");
  check->add_option("SPEC", check_files, "spec files")->required();
  check->add_option("--format", check_format, "text or json (diagnostics as a JSON array)")
      ->check(CLI::IsMember({"text", "json"}));
  std::string check_hardware, plan_hardware;
  check->add_option("--hardware", check_hardware,
                    "check every rank's memory against this device: a preset (h100, h200) or a hardware file "
                    "(default: the spec's `hardware`, else no memory check)");

  std::string plan_file, plan_format = "text", plan_output;
  auto* plan = app.add_subcommand("plan", "the full plan: layouts, slices, collectives, memory");
  plan->add_option("SPEC", plan_file, "spec file")->required();
  plan->add_option("--format", plan_format, "text or json")->check(CLI::IsMember({"text", "json"}));
  plan->add_option("-o,--output", plan_output, "write to FILE instead of stdout");
  plan->add_option("--hardware", plan_hardware, "as check's --hardware; the plan then says how full each rank is");

  std::string render_file, render_output, render_view = "modules";
  int render_layer = 0;
  auto* render = app.add_subcommand(
      "render", "the plan graph as SVG, PNG or DOT (the format is the output's extension)");
  render->add_option("SPEC", render_file, "spec file")->required();
  render->add_option("-o,--output", render_output, "FILE.svg, FILE.png or FILE.dot")->required();
  render->add_option("--view", render_view,
                     "modules: the data flow with modes and collectives (default); ranks: which "
                     "slice of each weight every rank holds, for one layer")
      ->check(CLI::IsMember({"modules", "ranks"}));
  auto* render_layer_option = render->add_option(
      "--layer", render_layer, "ranks view: the layer to show (default: the first decoder layer)");

  SweepCli sweep_cli;
  auto* sweep = app.add_subcommand("sweep", "every valid spec of a model on N GPUs, predicted and ranked by throughput");
  sweep->add_option("--config", sweep_cli.config, "the model's config.json")->required()->check(CLI::ExistingFile);
  sweep->add_option("--world", sweep_cli.world, "number of GPUs")->required()->check(CLI::Range(1, 65536));
  sweep->add_option("--batch", sweep_cli.workload.batch, "requests in flight")->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  sweep->add_option("--prompt-tokens", sweep_cli.workload.prompt_tokens, "text tokens per request")
      ->check(CLI::Range(1, 1 << 24))->capture_default_str();
  sweep->add_option("--new-tokens", sweep_cli.workload.new_tokens, "tokens generated per request")
      ->check(CLI::Range(0, 1 << 24))->capture_default_str();
  sweep->add_option("--images-per-request", sweep_cli.workload.images_per_request, "images per request (llava)")
      ->check(CLI::Range(0, 1024))->capture_default_str();
  sweep->add_option("--dtype", sweep_cli.dtype, "float32, bfloat16 or float16")
      ->check(CLI::IsMember({"float32", "bfloat16", "float16"}))->capture_default_str();
  sweep->add_option("--hardware", sweep_cli.hardware, "a preset (h100, h200) or a hardware YAML file")
      ->capture_default_str();
  sweep->add_option("--top", sweep_cli.top, "how many plans to print and write")->check(CLI::Range(1, 10000))
      ->capture_default_str();
  sweep->add_option("-o,--output", sweep_cli.output, "folder for the top specs, the tables and pareto.svg");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --version
    app.exit(e);
    return kExitUsage;
  }
  if (*check) return run_check(check_files, check_format, check_hardware);
  if (*plan) return run_plan(plan_file, plan_format, plan_output, plan_hardware);
  if (*sweep) return run_sweep_command(sweep_cli);
  if (*render) {
    const std::optional<int> layer =
        render_layer_option->count() ? std::optional<int>(render_layer) : std::nullopt;
    return run_render(render_file, render_output, render_view, layer);
  }
  return kExitUsage;
}

}  // namespace
}  // namespace shardplan

int main(int argc, char** argv) {
  try {
    return shardplan::main_impl(argc, argv);
  } catch (const shardplan::Error& e) {
    std::cerr << "planner: error: " << e.what() << "\n";
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cerr << "planner: error: " << e.what() << "\n";
    return 2;
  }
}
