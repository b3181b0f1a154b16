// The family table: every model family the project knows, in one place. A family lives in
// models/<family>/ and gives its entry (name, the config.json model_type values it reads, its
// graph builder, which reads the family's typed config once, and its Hub name aliases);
// models/family/family_table.cc lists the entries, models/forward/forward_table.cc pairs each
// with its forward. Nothing else in the project compares family or model-type names
// (tests/models/family_names_test.cc enforces it).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/graph/model_graph.h"

namespace shardplan {

struct Family {
  std::string name;                      // ModelGraph::family
  std::vector<std::string> model_types;  // config.json model_type values it builds
  // The graph of a config.json of one of `model_types`: sets ModelGraph::family_config (the typed
  // config, read once) and ModelGraph::workload (what the family's inputs look like: image
  // tokens, pixels, log-mel features), which the executor's input maker follows.
  ModelGraph (*build_graph)(const nlohmann::json& config) = nullptr;
  // A tensor's name in the family's other Hub layout (either direction), nullopt when it has
  // none; null when the family has a single layout.
  std::optional<std::string> (*alternate_hub_name)(const std::string& name) = nullptr;
};

// Every family, in the order `planner` lists them.
const std::vector<const Family*>& family_table();

// By ModelGraph::family / by config.json model_type; nullptr when none.
const Family* find_family(const std::string& name);
const Family* family_of_model_type(const std::string& model_type);

}  // namespace shardplan
