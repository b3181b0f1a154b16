// libFuzzer target: a config.json's bytes to the model graph, through the JSON parse with its
// nesting limit that `load_model_graph` (planner sweep, the executor) uses. A ConfigError is the
// normal rejection; a crash, undefined behaviour, another exception, a hang or a runaway
// allocation is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/error.h"
#include "base/input_file.h"
#include "models/graph/registry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The file reader refuses a larger config before parsing it.
  if (size > static_cast<size_t>(shardplan::kMaxConfigBytes)) return 0;
  try {
    const shardplan::ModelGraph graph =
        shardplan::model_graph_from_text(std::string(reinterpret_cast<const char*>(data), size), "config.json");
    // What the planner reads of every graph: its modules, their tensors and the totals.
    (void)graph.num_parameters();
    (void)graph.config.dump();
  } catch (const shardplan::Error&) {
    // a documented rejection
  }
  return 0;
}
