// Helpers for the runtime tests: a plan from a spec file, and a run of every rank of a plan on
// threads over the in-process communicator.
#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "executor/runtime/rank_run.h"
#include "planner/plan/plan.h"
#include "planner/spec/spec_check.h"
#include "tests/executor/spec_test_util.h"
#include "tests/executor/thread_communicator.h"

namespace shardplan::testing {

inline std::unique_ptr<Plan> load_plan(const std::string& spec_file) {
  Diagnostics diags;
  CheckedSpec checked;
  const CheckOutcome outcome = check_spec_file(spec_file, diags, &checked);
  std::string messages;
  for (const Diagnostic& d : diags.all()) messages += format_diagnostic(d) + "\n";
  if (outcome != CheckOutcome::kValid) throw std::runtime_error("invalid spec " + spec_file + ":\n" + messages);
  return build_plan(std::move(checked));
}

struct ThreadedRun {
  RunReport report;                                // rank 0's
  std::vector<std::vector<std::string>> calls;     // every rank's collectives
};

// Every rank of `plan` on its own thread (the in-process communicator; none for a world of one),
// all on `device`.
inline ThreadedRun run_threaded(const Plan& plan, bool verify = true, at::Device device = at::kCPU,
                                bool profile = false) {
  ThreadedRun out;
  const int world = static_cast<int>(plan.world_size());
  out.calls.resize(world);
  std::optional<RunReport> report;
  run_ranks(world, [&](int rank, ThreadCommunicator& comm) {
    RankRunOptions options;
    options.device = device;
    options.verify = verify;
    options.warm_up = false;
    options.profile = profile;
    std::optional<RunReport> r = run_rank(plan, rank, world > 1 ? &comm : nullptr, options);
    if (rank == 0) report = std::move(r);
    out.calls[rank] = comm.calls();
  });
  if (!report) throw std::runtime_error("rank 0 made no report");
  out.report = std::move(*report);
  return out;
}

}  // namespace shardplan::testing
