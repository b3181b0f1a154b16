// libFuzzer target: spec text through `planner check`, in memory: YAML, schema, the model config,
// the semantic checks, the plan bound for every rank and the memory check, as check_one of
// planner/cli/main.cc runs them; then the diagnostics printed as text and as `--format json`.
// Rejected specs (diagnostics, a shardplan::Error) are the normal outcome; a crash, undefined
// behaviour, another exception, a hang or a runaway allocation is a finding.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/input_file.h"
#include "planner/plan/binding.h"
#include "planner/plan/plan.h"
#include "planner/spec/spec_check.h"
#include "planner/sweep/hardware.h"
#include "planner/sweep/memory_check.h"

namespace {

// NOTE: a spec "in" specs/, so the relative model.config of the seeds ("../models/configs/...")
// resolves to the source tree's configs, as it does for `planner check specs/...`.
const std::string kSpecFile = std::string(SHARDPLAN_SOURCE_DIR) + "/specs/fuzz.yaml";

void check_text(const std::string& text) {
  using namespace shardplan;
  Diagnostics diags;
  CheckedSpec checked;
  if (check_spec_text(text, kSpecFile, diags, &checked) == CheckOutcome::kValid) {
    std::unique_ptr<Plan> plan = build_plan(std::move(checked));
    check_executable(*plan, diags);
    const Spec& spec = plan->spec();
    if (spec.hardware && !diags.has_errors()) {
      try {
        const Hardware hardware = load_hardware(*spec.hardware);
        check_memory(*plan, hardware, spec.hardware_pos, diags);
      } catch (const HardwareError& e) {
        diags.error(kSpecFile, spec.hardware_pos, e.what());
      }
    }
  }
  diags.sort();
  // What `planner check` prints: text, and JSON, which refuses a byte that is not UTF-8.
  nlohmann::json out = nlohmann::json::array();
  for (const Diagnostic& d : diags.all()) {
    (void)format_diagnostic(d);
    out.push_back({{"file", d.file}, {"line", d.pos.line}, {"column", d.pos.column}, {"message", d.message}});
  }
  (void)out.dump();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The file reader refuses a larger spec before parsing it.
  if (size > static_cast<size_t>(shardplan::kMaxSpecBytes)) return 0;
  try {
    check_text(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const shardplan::Error&) {
    // a documented rejection
  }
  return 0;
}
