// Shared by the render tests: plans of the shipped specs and of temporary specs.
#pragma once

#include <memory>
#include <string>

#include "planner/plan/plan.h"

namespace shardplan {

// The plan of specs/NAME.yaml (NAME without the extension); fails the test when it is invalid.
std::unique_ptr<Plan> shipped_plan(const std::string& name);

// Writes `yaml` to a fresh temporary folder as spec.yaml and returns its path. "CONFIGS" in the
// text is replaced by the absolute path of models/configs.
std::string temp_spec(const std::string& yaml);

// The plan of a spec file; fails the test when it is invalid.
std::unique_ptr<Plan> plan_of(const std::string& file);

std::string read_file(const std::string& path);

// The names (without .yaml) of every spec in specs/, sorted.
std::vector<std::string> shipped_specs();

}  // namespace shardplan
