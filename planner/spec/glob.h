// Module-path globs of spec rules: segments separated by '.', '*' (and '?', '[..]') match within
// one segment, a whole segment '**' matches any number of segments (zero included).
//   "model.layers.*.mlp"      matches "model.layers.3.mlp", not "model.layers.3.x.mlp"
//   "language_model.**"       matches "language_model.model.layers.0.self_attn"
//   "model.layers.1?.mlp"     matches layers 10..19
#pragma once

#include <string>

namespace shardplan {

bool glob_match(const std::string& pattern, const std::string& path);

}  // namespace shardplan
