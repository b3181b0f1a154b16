// The plan as JSON (spec-format.md §5), validated in the tests against schemas/plan.schema.json.
#pragma once

#include <nlohmann/json.hpp>

#include "planner/plan/plan.h"

namespace shardplan {

nlohmann::json plan_to_json(const Plan& plan);

}  // namespace shardplan
