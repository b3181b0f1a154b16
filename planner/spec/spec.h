// The spec as values: what `planner check` validated, with the source position of every piece a
// later diagnostic may point at. Built from the YAML document after the schema pass.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "models/graph/model_graph.h"
#include "planner/spec/diagnostic.h"
#include "planner/spec/yaml_document.h"

namespace shardplan {

enum class ParallelMode { kReplicate, kTensor, kData, kExpert };
const char* to_string(ParallelMode mode);
std::optional<ParallelMode> parse_parallel_mode(const std::string& text);

struct MeshAxisSpec {
  std::string name;
  int64_t size = 1;
  SourcePos key_pos, value_pos;
};

// A moe rule's `shared_expert`: the mode of the MoE's shared expert (replicate or tensor).
struct SharedExpertSpec {
  ParallelMode mode = ParallelMode::kReplicate;
  std::vector<std::string> axes;
  SourcePos pos, mode_pos, axes_pos;
  std::vector<SourcePos> axis_pos;
};

struct RuleSpec {
  int index = 0;                     // position in `modules`
  std::vector<ModuleKind> kinds;     // empty: any kind
  std::optional<std::string> path;   // glob
  ParallelMode mode = ParallelMode::kReplicate;
  std::vector<std::string> axes;
  SourcePos pos;                     // the rule's first key: what "rule_line" reports
  SourcePos kind_pos, path_pos, mode_pos, axes_pos;
  std::vector<SourcePos> axis_pos;   // one per axes entry
  std::optional<SharedExpertSpec> shared_expert;
  bool well_formed = true;           // false: the schema rejected part of it; checks skip it
};

struct WorkloadSpec {
  int64_t batch = 1;                 // default: the world size (one request per rank)
  bool batch_given = false;
  int64_t prompt_tokens = 128;
  int64_t new_tokens = 32;
  int64_t images_per_request = 1;
  bool images_given = false;
  // Decode CUDA graphs' batch sizes, ascending (empty: the executor's default, graph_batch_size).
  std::vector<int64_t> graph_batch_sizes;
  SourcePos batch_pos, prompt_pos, new_tokens_pos, images_pos, graph_sizes_pos;
};

struct Spec {
  std::string file;                  // as given on the command line
  std::string name;
  std::string config_path;           // resolved against the spec's folder
  std::string config_path_as_written;
  SourcePos config_pos;
  bool model_ok = false;             // model.config was given as a string
  std::optional<std::string> checkpoint_path;  // resolved likewise
  SourcePos checkpoint_pos;
  DType dtype = DType::kBFloat16;
  // `hardware`: a preset name, or a hardware file resolved against the spec's folder.
  std::optional<std::string> hardware;
  SourcePos hardware_pos;
  std::vector<MeshAxisSpec> mesh;
  SourcePos mesh_pos;
  std::vector<std::string> batch_axes;
  std::vector<SourcePos> batch_axis_pos;
  ParallelMode default_mode = ParallelMode::kReplicate;
  std::vector<std::string> default_axes;
  SourcePos default_pos;
  std::vector<RuleSpec> rules;
  WorkloadSpec workload;

  int64_t world_size() const;        // the product of the mesh sizes; INT64_MAX past it
};

// Reads the values of a document that passed the schema. Values the schema could not rule out
// (a mode the kind does not allow, unknown axes) are left to check_spec.
Spec spec_from_document(const YamlDocument& doc, const std::string& file);

// Parses and schema-checks a spec's text: YAML syntax and schema problems go to diags. `file`
// names it in diagnostics, and relative paths in it resolve against its folder. Returns nullopt
// when the text is not YAML; with schema errors it still returns what could be read, so the
// semantic checks can report too.
std::optional<Spec> spec_from_text(const std::string& text, const std::string& file, Diagnostics& diags);

}  // namespace shardplan
