// A spec file as JSON, with where each value (and each key) sits in the YAML text, so that every
// later check can point a diagnostic at the exact line:col. YAML 1.2 core schema typing.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "planner/spec/diagnostic.h"

namespace shardplan {

// Positions are keyed by RFC 6901 JSON pointers: "" is the root, "/modules/1/axes/0" the first
// axis of the second rule, "/a~1b" the key "a/b", "/a~0b" the key "a~b".
//
// Example, for
//   1 | mesh:
//   2 |   dp: 2
//   3 |   tp: 4
// key_pos["/mesh/tp"] = 3:3, value_pos["/mesh/tp"] = 3:7, key_pos["/mesh"] = 1:1 and
// value_pos["/mesh"] = 2:3 (a block mapping starts at its first key).
struct YamlDocument {
  nlohmann::json root;
  // JSON pointer -> position of the value; for object members also the key.
  std::map<std::string, SourcePos> value_pos, key_pos;

  // Position of the value at `pointer`, else of its nearest existing ancestor's value.
  SourcePos value_at(const std::string& pointer) const;
  // Position of the key at `pointer`, else its value, else key_at(parent): a missing key points at
  // the key of the mapping that lacks it ("model:"), a sequence item at its first line.
  SourcePos key_at(const std::string& pointer) const;

  // The member names of the mapping at `pointer` in the order they are written in the file.
  // NOTE: `root` is an nlohmann::json, whose objects sort their keys; order matters for `mesh`
  // (ranks are row-major over the axes in document order), so read it from here.
  std::vector<std::string> keys_in_order(const std::string& pointer) const;

  // How a user writes the location of `pointer`: "/modules/1/axes/0" -> "modules[1].axes[0]",
  // "/workload/batch" -> "workload.batch", "" -> "the spec". Keys that are not identifiers are
  // quoted: "/mesh/my axis" -> "mesh['my axis']".
  std::string display_path(const std::string& pointer) const;
};

// RFC 6901: "~" -> "~0", "/" -> "~1".
std::string escape_pointer_token(const std::string& token);
// The pointer's tokens, unescaped: "/a~1b/0" -> {"a/b", "0"}; "" -> {}.
std::vector<std::string> split_pointer(const std::string& pointer);

// Parses YAML text; on a syntax error adds a diagnostic with the error's line:col (1-based) and
// returns nullopt. Checks, each an error diagnostic:
//   - YAML syntax (yaml-cpp's message, at its position);
//   - the text holds exactly one YAML document; an empty one (nothing but comments) is
//     "the spec is empty";
//   - every mapping key is a scalar, and no key repeats within a mapping (reported at the second
//     occurrence; the first one's value is kept);
//   - only the standard tags (!!str, !!int, !!float, !!bool, !!null, !!map, !!seq) are used;
//   - aliases expand to at most 1,000,000 values nested at most 256 deep ("billion laughs");
//   - keys have at most 256 characters and scalar values at most 4,096, and both are UTF-8 (the
//     document is then refused: later checks never see an unbounded string, and JSON output
//     never a byte it cannot carry).
// Syntax errors, several documents, an empty spec and a too large one return nullopt; with the
// other errors the document is returned so later checks can report more problems.
//
// Scalar typing follows the YAML 1.2 core schema, as yaml-language-server does: plain scalars
// ~, null, Null, NULL and empty -> null; true/True/TRUE/false/False/FALSE -> bool (not yes/no/on);
// [-+]?[0-9]+, 0o[0-7]+, 0x[0-9a-fA-F]+ -> integer;
// [-+]?(.[0-9]+|[0-9]+(.[0-9]*)?)([eE][-+]?[0-9]+)?, [-+]?.inf, .nan (three casings) -> float;
// anything else, and every quoted or block scalar, -> string. Aliases are resolved; their positions are those of the anchored node.
std::optional<YamlDocument> parse_yaml_document(const std::string& text, const std::string& file,
                                                Diagnostics& diags);

}  // namespace shardplan
