// The JSON Schema pass over a parsed spec (schemas/spec.schema.json): valijson finds the problems,
// this turns its nested reports into one diagnostic per problem at the offending key or value.
#pragma once

#include <string>

#include "planner/spec/diagnostic.h"
#include "planner/spec/yaml_document.h"

namespace shardplan {

// Validates doc.root against the JSON Schema text (draft-07); adds one diagnostic per problem at
// the offending key or value, in a deterministic order (line, column, message). Reports:
//   - unknown keys (additionalProperties: false), each at the key:
//       "unknown key 'modez' in modules[1] (allowed: kind, path, mode, axes)"
//   - missing required keys, at the key of the mapping that lacks them (a list item: its start):
//       "missing required key 'mesh'", "missing required key 'config' in model"
//   - a rule with neither selector (anyOf of required keys), at the rule:
//       "modules[2] needs at least one of 'kind', 'path'"
//   - wrong values, one message per value whatever the number of constraints it breaks:
//       "modules[1].mode 'tensr' is not one of replicate, tensor, data, expert"
//       "workload.batch must be an integer >= 1, got 0"
//       "version must be 1, got 2"
//       "mesh.tp must be an integer, got the string '4'"
//   - mapping keys that break `propertyNames`, at the key:
//       "mesh axis name 'TP' must match [a-z][a-z0-9_]*"
//   - repeated items in a uniqueItems list, at the repeat: "batch_axes lists 'dp' more than once"
// A schema text that does not parse is an "internal error" diagnostic, not an exception.
void check_against_schema(const YamlDocument& doc, const std::string& schema_text,
                          const std::string& file, Diagnostics& diags);

}  // namespace shardplan
