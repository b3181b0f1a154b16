// Plan -> Graphviz DOT text: the pictures `planner render` draws. Pure and deterministic (the same
// plan gives the same bytes, node ids come from module paths); no Graphviz call here, see
// graphviz_render.h for the layout.
//
// Two views:
//  - modules: the model's data flow (vision tower -> projector -> layers -> head; audio encoder ->
//    decoder with its cross-attention input), identical consecutive layers folded into one
//    cluster marked "x32"; nodes coloured by mode; every edge that carries a collective is red and
//    labelled with op, axes and the bytes each rank sends (per decode step; in prefill for the
//    prefill-only image / audio streams); a legend and the mesh as a grid of ranks.
//  - ranks: for one layer, which slice of each weight every rank holds. Ranks that hold the same
//    slices of every weight share a column ("ranks 0, 4"), equal neighbouring cells merge, and
//    more than 16 columns are cut with a "..." column.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "planner/plan/plan.h"

namespace shardplan {

enum class PlanView { kModules, kRanks };
std::optional<PlanView> parse_plan_view(const std::string& text);  // "modules" / "ranks"

struct DotOptions {
  PlanView view = PlanView::kModules;
  // Ranks view: the layer to show; nullopt = the first decoder (language-model) layer.
  std::optional<int> layer;
};

// Throws RenderError when `options` do not fit the plan (a layer the model does not have, a
// ranks view of a model without layers).
std::string plan_to_dot(const Plan& plan, const DotOptions& options = {});

// The colours of a parallel mode, the same in every picture and in the legend.
struct ModeColors {
  const char* fill;
  const char* border;
};
ModeColors mode_colors(ParallelMode mode);

// Escapes text for a Graphviz HTML-like label: & < > " and ' become entities.
std::string html_escape(const std::string& text);

// What a rank holds of a tensor of shape `full`, for the ranks view. k_proj.weight [1024, 4096]
// split by rows over 4 ranks, rank 1: "rows 256–511"; a column split: "cols 0–511"; a 1-D slice:
// "0–255"; the whole tensor: "whole"; nothing (an expert elsewhere): "—".
std::string slice_text(const std::vector<int64_t>& full, const ShardSlice& slice);

}  // namespace shardplan
