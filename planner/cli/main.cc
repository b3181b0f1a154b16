// planner: check, plan and render sharding specs (spec-format.md §4).
// Exit codes: 0 valid / done; 1 the spec is invalid; 2 usage or I/O error.
#include <CLI/CLI.hpp>

#include <cctype>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "planner/io/output_file.h"
#include "planner/plan/binding.h"
#include "planner/plan/plan.h"
#include "planner/plan/plan_json.h"
#include "planner/plan/plan_text.h"
#include "planner/render/graphviz_render.h"
#include "planner/render/plan_dot.h"
#include "planner/render/render_error.h"
#include "planner/spec/spec_check.h"

namespace shardplan {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitInvalid = 1;
constexpr int kExitUsage = 2;

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
CheckOutcome check_one(const std::string& file, Diagnostics& all, std::unique_ptr<Plan>* plan) {
  Diagnostics diags;
  CheckedSpec checked;
  CheckOutcome outcome = check_spec_file(file, diags, &checked);
  if (outcome == CheckOutcome::kValid) {
    *plan = build_plan(std::move(checked));
    check_executable(**plan, diags);
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

int run_check(const std::vector<std::string>& files, const std::string& format) {
  Diagnostics all;
  int worst = kExitOk;
  std::vector<std::string> summaries;
  for (const auto& f : files) {
    std::unique_ptr<Plan> plan;
    const CheckOutcome o = check_one(f, all, &plan);
    worst = std::max(worst, exit_code(o));
    if (o == CheckOutcome::kValid) summaries.push_back(summary(f, *plan));
  }
  if (format == "json") {
    std::cout << diagnostics_json(all).dump(2) << "\n";
  } else {
    print_diagnostics(all);
    for (const auto& s : summaries) std::cout << s << "\n";
  }
  return worst;
}

int run_plan(const std::string& file, const std::string& format, const std::string& output) {
  Diagnostics all;
  std::unique_ptr<Plan> plan;
  const CheckOutcome o = check_one(file, all, &plan);
  print_diagnostics(all);
  if (o != CheckOutcome::kValid) return exit_code(o);
  const std::string text =
      format == "json" ? plan_to_json(*plan).dump(1) + "\n" : plan_to_text(*plan);
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

int main_impl(int argc, char** argv) {
  CLI::App app{"planner: check, plan and render declarative sharding specs"};
  app.require_subcommand(1);

  std::vector<std::string> check_files;
  std::string check_format = "text";
  auto* check = app.add_subcommand("check", "validate specs; one summary line per valid spec");
  check->add_option("SPEC", check_files, "spec files")->required();
  check->add_option("--format", check_format, "text or json (diagnostics as a JSON array)")
      ->check(CLI::IsMember({"text", "json"}));

  std::string plan_file, plan_format = "text", plan_output;
  auto* plan = app.add_subcommand("plan", "the full plan: layouts, slices, collectives, memory");
  plan->add_option("SPEC", plan_file, "spec file")->required();
  plan->add_option("--format", plan_format, "text or json")->check(CLI::IsMember({"text", "json"}));
  plan->add_option("-o,--output", plan_output, "write to FILE instead of stdout");

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

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  if (*check) return run_check(check_files, check_format);
  if (*plan) return run_plan(plan_file, plan_format, plan_output);
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
