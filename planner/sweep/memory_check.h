// Does every rank of a plan fit its device? The one memory model of planner/plan/cost.h
// (weights + KV cache + the prefill's activations, RankCost::memory_bytes) against a hardware
// file's usable memory: what `planner check` and `planner plan` report when the spec names a
// `hardware` (or `--hardware` is given), and what `planner sweep` drops plans by.
#pragma once

#include <string>

#include "planner/plan/plan.h"
#include "planner/spec/diagnostic.h"
#include "planner/sweep/hardware.h"

namespace shardplan {

// An error at `pos` of the spec for the first rank that does not fit: the rank, its bytes by
// part, and the device's usable bytes.
void check_memory(const Plan& plan, const Hardware& hardware, SourcePos pos, Diagnostics& diags);

// "memory per rank: 15.9 GiB of 118.2 GiB usable on H200 (13%)" for the largest rank.
std::string memory_summary(const Plan& plan, const Hardware& hardware);

}  // namespace shardplan
