// The plan for humans: one row per module group (identical layers folded, "layers 0-31") with
// mode, axes, per-rank weight bytes and the collectives after it, then totals.
#pragma once

#include <cstdint>
#include <string>

#include "planner/plan/plan.h"

namespace shardplan {

std::string plan_to_text(const Plan& plan);

// "512 B", "1.50 KiB", "14.96 GiB".
std::string format_bytes(double bytes);
// "1.2 TFLOP", "850 GFLOP".
std::string format_flops(double flops);

// A module path with its layer index folded: "model.layers.*.mlp".
std::string fold_layer(const std::string& path, int layer);

}  // namespace shardplan
