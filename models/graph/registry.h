// From a Hugging Face config.json to the ModelGraph of its family.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/graph/model_graph.h"

namespace shardplan {

// model_type values with a family, in the family table's order.
const std::vector<std::string>& supported_model_types();

// Throws ConfigError: unknown model_type (the message lists the supported ones), a missing
// required field, or sizes that contradict each other (hidden_size not divisible by heads).
ModelGraph build_model_graph(const nlohmann::json& config);

// Reads and parses the file first; ConfigError when it is missing or not JSON.
ModelGraph load_model_graph(const std::string& config_path);

// load_model_graph on text already read (the config fuzzer's entry): parsed with the nesting limit
// of base/input_file.h; `where` (the file) starts every message.
ModelGraph model_graph_from_text(const std::string& text, const std::string& where);

}  // namespace shardplan
