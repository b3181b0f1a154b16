// Semantic checks of a spec against its mesh and the model's real shapes, and the whole
// `planner check` pass (read, YAML, schema, config, semantics) for one file.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "models/graph/model_graph.h"
#include "planner/spec/assignment.h"
#include "planner/spec/diagnostic.h"
#include "planner/spec/spec.h"

namespace shardplan {

// Checks, each reported at the offending key or value with the values involved:
//  - mesh: sizes >= 1, at most kMaxWorldSize ranks (then nothing else is checked);
//  - batch_axes: known axes, each listed once; workload.batch divisible by their product;
//  - every rule: axes known and listed once; a batch axis never used by a tensor rule (an expert
//    rule may: its tokens reach the experts by all_to_all there);
//    tensor / data / expert need axes (replicate with axes is a warning); the mode is allowed for
//    every kind the rule names or matches; a path rule never points inside an encoder; a rule
//    that matches no module is a warning;
//  - every module under its final assignment: heads, KV heads (or their replication),
//    intermediate size, vocabulary, experts and the encoder's heads divisible by the group size;
//    requests per data group divisible by the group size;
//  - a tied output projection has the same layout as the embedding it shares its tensor with.
void check_spec(const Spec& spec, const ModelGraph& graph, Diagnostics& diags);

// The most ranks a mesh may have (the product of its axis sizes); a larger mesh is an error, so
// that nothing downstream multiplies sizes past int64 or allocates per-rank tables without bound.
inline constexpr int64_t kMaxWorldSize = 65536;

enum class CheckOutcome { kValid, kInvalid, kIoError };

// NOTE: not copyable: `assignment` points into `graph`, and a copy would point into the original.
// Moves keep the pointers valid (std::vector moves keep element addresses).
struct CheckedSpec {
  Spec spec;
  ModelGraph graph;
  std::vector<ModuleAssignment> assignment;

  CheckedSpec() = default;
  CheckedSpec(const CheckedSpec&) = delete;
  CheckedSpec& operator=(const CheckedSpec&) = delete;
  CheckedSpec(CheckedSpec&&) = default;
  CheckedSpec& operator=(CheckedSpec&&) = default;
};

// The whole `planner check` of one file. kIoError: the spec or its config could not be read
// (exit code 2); kInvalid: at least one error (exit code 1). `out` is filled when valid.
CheckOutcome check_spec_file(const std::string& file, Diagnostics& diags, CheckedSpec* out);

// check_spec_file on text already read (the spec fuzzer's entry): `file` names it in diagnostics,
// and model.config resolves against its folder (the config itself is read from disk).
CheckOutcome check_spec_text(const std::string& text, const std::string& file, Diagnostics& diags,
                             CheckedSpec* out);

// "[tp]" / "[dp, tp]"; with sizes "[tp] (size 4)" / "[dp, tp] (size 2*4 = 8)".
std::string axes_text(const std::vector<std::string>& axes);

}  // namespace shardplan
