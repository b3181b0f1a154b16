// Memory per rank against the device (see memory_check.h).
#include "planner/sweep/memory_check.h"

#include <cstdio>

namespace shardplan {
namespace {

std::string gib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1 << 30));
  return buf;
}

}  // namespace

void check_memory(const Plan& plan, const Hardware& hardware, SourcePos pos, Diagnostics& diags) {
  const int64_t usable = usable_memory_bytes(hardware);
  for (size_t r = 0; r < plan.ranks.size(); ++r) {
    const RankCost& c = plan.ranks[r];
    if (c.memory_bytes() <= usable) continue;
    char fraction[16];
    std::snprintf(fraction, sizeof fraction, "%.2f", hardware.memory_usable_fraction);
    diags.error(plan.spec().file, pos,
                "rank " + std::to_string(r) + " needs " + gib(c.memory_bytes()) + " (weights " + gib(c.weight_bytes) +
                    ", KV cache " + gib(c.kv_cache_bytes) + ", prefill activations " + gib(c.activation_bytes) +
                    ") but the device (" + hardware.name + ") gives a rank " + gib(usable) + " (" + gib(hardware.memory_bytes) +
                    " x memory_usable_fraction " + fraction +
                    "): split the weights over more ranks, or lower workload.batch or its tokens");
    return;
  }
}

std::string memory_summary(const Plan& plan, const Hardware& hardware) {
  int64_t most = 0;
  for (const RankCost& c : plan.ranks) most = std::max(most, c.memory_bytes());
  const int64_t usable = usable_memory_bytes(hardware);
  char percent[16];
  std::snprintf(percent, sizeof percent, "%.0f%%", 100.0 * static_cast<double>(most) / static_cast<double>(usable));
  return "memory per rank: " + gib(most) + " of " + gib(usable) + " usable on " + hardware.name + " (" + percent + ")";
}

}  // namespace shardplan
