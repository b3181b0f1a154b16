// plan_to_dot: golden DOT files for two shipped specs (both views), and what each picture must
// show: folded layers, collectives on edges, mode colours, the mesh grid, per-rank slices.
// Regenerate the golden files with: SHARDPLAN_UPDATE_GOLDEN=1 ctest -R RenderGolden (or
// scripts/update-golden-dot.sh), then review the diff.
#include "planner/render/plan_dot.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <set>

#include "planner/render/render_error.h"
#include "render_test_util.h"

namespace shardplan {
namespace {

int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

// The line that defines node `id` (a quoted id followed by its attributes).
std::string node_line(const std::string& dot, const std::string& id) {
  const std::string start = "\"" + id + "\" [";
  const auto pos = dot.find(start);
  if (pos == std::string::npos) return "";
  return dot.substr(pos, dot.find('\n', pos) - pos);
}

// The line of the edge from -> to.
std::string edge_line(const std::string& dot, const std::string& from, const std::string& to) {
  const std::string start = "\"" + from + "\" -> \"" + to + "\"";
  const auto pos = dot.find(start);
  if (pos == std::string::npos) return "";
  return dot.substr(pos, dot.find('\n', pos) - pos);
}

struct GoldenCase {
  const char* spec;
  PlanView view;
  const char* file;
};

class RenderGolden : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(RenderGolden, MatchesFile) {
  const GoldenCase& c = GetParam();
  auto plan = shipped_plan(c.spec);
  ASSERT_TRUE(plan);
  DotOptions options;
  options.view = c.view;
  const std::string dot = plan_to_dot(*plan, options);
  const std::string path = std::string(SHARDPLAN_SOURCE_DIR) + "/tests/render/golden/" + c.file;
  if (std::getenv("SHARDPLAN_UPDATE_GOLDEN")) {
    std::ofstream(path, std::ios::binary) << dot;
    GTEST_SKIP() << "wrote " << path;
  }
  const std::string golden = read_file(path);
  ASSERT_FALSE(golden.empty()) << "missing " << path << ": run scripts/update-golden-dot.sh";
  EXPECT_EQ(dot, golden) << "the DOT of " << c.spec << " changed; if that is intended, run "
                         << "scripts/update-golden-dot.sh and review the diff";
}

INSTANTIATE_TEST_SUITE_P(
    Specs, RenderGolden,
    ::testing::Values(GoldenCase{"llava-1.5-7b-vision-dp-tp4", PlanView::kModules,
                                 "llava-1.5-7b-vision-dp-tp4.modules.dot"},
                      GoldenCase{"llava-1.5-7b-vision-dp-tp4", PlanView::kRanks,
                                 "llava-1.5-7b-vision-dp-tp4.ranks.dot"},
                      GoldenCase{"mixtral-8x7b-attn-dp8-ep8", PlanView::kModules,
                                 "mixtral-8x7b-attn-dp8-ep8.modules.dot"},
                      GoldenCase{"mixtral-8x7b-attn-dp8-ep8", PlanView::kRanks,
                                 "mixtral-8x7b-attn-dp8-ep8.ranks.dot"},
                      GoldenCase{"whisper-large-v3-tp2", PlanView::kModules,
                                 "whisper-large-v3-tp2.modules.dot"}),
    [](const ::testing::TestParamInfo<GoldenCase>& info) {
      std::string name = info.param.file;
      for (char& ch : name) {
        if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      return name;
    });

TEST(PlanDot, SameBytesEveryTime) {
  for (const std::string& spec : shipped_specs()) {
    auto a = shipped_plan(spec);
    auto b = shipped_plan(spec);
    ASSERT_TRUE(a && b);
    for (PlanView view : {PlanView::kModules, PlanView::kRanks}) {
      DotOptions o;
      o.view = view;
      EXPECT_EQ(plan_to_dot(*a, o), plan_to_dot(*b, o)) << spec;
    }
  }
}

TEST(PlanDot, FoldsIdenticalLayersIntoOneNodeMarkedWithTheCount) {
  auto plan = shipped_plan("llama-3-8b-tp4");
  ASSERT_TRUE(plan);
  const std::string dot = plan_to_dot(*plan);
  // One node for the 32 attention blocks, one for the 32 MLPs, in one cluster "layers 0–31".
  EXPECT_NE(node_line(dot, "model.layers.*.self_attn@0-31"), "");
  EXPECT_NE(node_line(dot, "model.layers.*.mlp@0-31"), "");
  EXPECT_EQ(count(dot, "model.layers.1."), 0);
  EXPECT_EQ(count(dot, "subgraph \"cluster_layers_"), 1);
  EXPECT_NE(dot.find("layers 0\u201331  \u00d732"), std::string::npos);
  EXPECT_NE(node_line(dot, "model.layers.*.mlp@0-31").find("\u00d732"), std::string::npos);
  // The stream goes from one layer to the next through the back edge, 31 times.
  const std::string back =
      edge_line(dot, "model.layers.*.mlp@0-31", "model.layers.*.self_attn@0-31");
  EXPECT_NE(back.find("constraint=false"), std::string::npos) << back;
  EXPECT_NE(back.find("[tp] \u00d731"), std::string::npos) << back;
}

TEST(PlanDot, ALayerThatDiffersSplitsTheFold) {
  auto plan = plan_of(temp_spec(R"(version: 1
name: layer 0 mlp replicated
model:
  config: CONFIGS/llama-3-8b.json
mesh:
  tp: 4
modules:
  - kind: [embedding, attention, mlp, lm_head]
    mode: tensor
    axes: [tp]
  - path: model.layers.0.mlp
    mode: replicate
)"));
  ASSERT_TRUE(plan);
  const std::string dot = plan_to_dot(*plan);
  EXPECT_EQ(count(dot, "subgraph \"cluster_layers_"), 2);
  EXPECT_NE(dot.find("<b>layer 0</b>"), std::string::npos);
  EXPECT_NE(dot.find("layers 1\u201331  \u00d731"), std::string::npos);
  const std::string mlp0 = node_line(dot, "model.layers.*.mlp@0-0");
  EXPECT_NE(mlp0.find(mode_colors(ParallelMode::kReplicate).fill), std::string::npos) << mlp0;
  // Replicated MLP: attention's partial output is reduced in front of it, nothing after it.
  EXPECT_NE(
      edge_line(dot, "model.layers.*.self_attn@0-0", "model.layers.*.mlp@0-0").find("all_reduce"),
      std::string::npos);
  EXPECT_EQ(
      edge_line(dot, "model.layers.*.mlp@0-0", "model.layers.*.self_attn@1-31").find("all_reduce"),
      std::string::npos);
}

TEST(PlanDot, NodesShowKindModeAxesAndWeightBytesInTheirModeColour) {
  auto plan = shipped_plan("llava-1.5-7b-vision-dp-tp4");
  ASSERT_TRUE(plan);
  const std::string dot = plan_to_dot(*plan);
  const std::string tower = node_line(dot, "vision_tower");
  EXPECT_NE(tower.find("<b>encoder</b>"), std::string::npos) << tower;
  EXPECT_TRUE(std::regex_search(tower, std::regex("<b>data</b>(&#160;)+\\[tp\\]"))) << tower;
  EXPECT_NE(tower.find("images \u00f7 4, weights whole"), std::string::npos) << tower;
  EXPECT_NE(tower.find("578.89 MiB weights / rank"), std::string::npos) << tower;
  EXPECT_NE(tower.find(std::string("fillcolor=\"") + mode_colors(ParallelMode::kData).fill),
            std::string::npos);
  const std::string attn = node_line(dot, "language_model.model.layers.*.self_attn@0-31");
  EXPECT_NE(attn.find(std::string("fillcolor=\"") + mode_colors(ParallelMode::kTensor).fill),
            std::string::npos);
  EXPECT_NE(attn.find("heads \u00f7 4"), std::string::npos) << attn;
  const std::string proj = node_line(dot, "multi_modal_projector");
  EXPECT_NE(proj.find(std::string("fillcolor=\"") + mode_colors(ParallelMode::kReplicate).fill),
            std::string::npos);
  EXPECT_NE(proj.find("full copy on every rank"), std::string::npos);
}

TEST(PlanDot, ModeColoursDifferAndTheLegendShowsEveryMode) {
  const ParallelMode modes[] = {ParallelMode::kReplicate, ParallelMode::kTensor,
                                ParallelMode::kData, ParallelMode::kExpert};
  std::set<std::string> fills;
  for (ParallelMode m : modes) fills.insert(mode_colors(m).fill);
  EXPECT_EQ(fills.size(), 4u);
  auto plan = shipped_plan("llama-3-8b-tp4");
  ASSERT_TRUE(plan);
  for (PlanView view : {PlanView::kModules, PlanView::kRanks}) {
    DotOptions o;
    o.view = view;
    const std::string dot = plan_to_dot(*plan, o);
    const auto start = dot.find("  legend [");
    ASSERT_NE(start, std::string::npos);
    const std::string legend = dot.substr(start, dot.find('\n', start) - start);
    for (ParallelMode m : modes) {
      EXPECT_NE(legend.find(std::string("bgcolor=\"") + mode_colors(m).fill + "\"><b>" +
                            to_string(m) + "</b>"),
                std::string::npos)
          << to_string(m);
    }
  }
}

TEST(PlanDot, EdgesCarryTheCollectivesWithOpAxesAndBytes) {
  auto plan = shipped_plan("llava-1.5-7b-vision-dp-tp4");
  ASSERT_TRUE(plan);
  const std::string dot = plan_to_dot(*plan);
  // The image features are gathered once, in prefill only (decode sends nothing).
  const std::string gather =
      edge_line(dot, "multi_modal_projector", "language_model.model.layers.*.self_attn@0-31");
  EXPECT_TRUE(std::regex_search(gather, std::regex("<b>all_gather</b>(&#160;)+\\[tp\\]<")))
      << gather;
  EXPECT_NE(gather.find("54.00 MiB in prefill only"), std::string::npos) << gather;
  EXPECT_NE(gather.find("color=\"#c62828\""), std::string::npos) << gather;
  // Per decode step on the text stream.
  const std::string ar = edge_line(dot, "language_model.model.layers.*.self_attn@0-31",
                                   "language_model.model.layers.*.mlp@0-31");
  EXPECT_TRUE(std::regex_search(ar, std::regex("<b>all_reduce</b>(&#160;)+\\[tp\\] \u00d732<")))
      << ar;
  EXPECT_NE(ar.find("192.00 KiB / decode step each"), std::string::npos) << ar;
  // The logits.
  EXPECT_NE(edge_line(dot, "language_model.lm_head", "output").find("751.50 KiB / decode step"),
            std::string::npos);
  // No collective: grey, unlabelled (or a note); the tower's images are split locally.
  const std::string flow = edge_line(dot, "vision_tower", "multi_modal_projector");
  EXPECT_EQ(flow.find("#c62828"), std::string::npos) << flow;
  EXPECT_NE(edge_line(dot, "input:image", "vision_tower").find("images split locally"),
            std::string::npos);
}

TEST(PlanDot, EveryCollectiveOfThePlanIsOnAnEdge) {
  // The counts on the edges add up to the plan's collectives.
  for (const std::string& spec : shipped_specs()) {
    auto plan = shipped_plan(spec);
    ASSERT_TRUE(plan);
    const std::string dot = plan_to_dot(*plan);
    int total = 0;
    const std::regex head(
        "<b>(all_reduce|all_gather|reduce_scatter|all_to_all)</b>[^<]*?(\u00d7([0-9]+))?</font>");
    for (auto it = std::sregex_iterator(dot.begin(), dot.end(), head); it != std::sregex_iterator();
         ++it) {
      total += (*it)[3].matched ? std::stoi((*it)[3].str()) : 1;
    }
    EXPECT_EQ(total, static_cast<int>(plan->comms.size())) << spec;
  }
}

TEST(PlanDot, WhisperShowsTheEncoderFeedingCrossAttention) {
  auto plan = shipped_plan("whisper-large-v3-tp2");
  ASSERT_TRUE(plan);
  const std::string dot = plan_to_dot(*plan);
  // The encoder states reach every decoder layer's cross-attention: a dashed edge.
  const std::string kv = edge_line(dot, "model.encoder", "model.decoder.layers.*.encoder_attn@0-31");
  EXPECT_NE(kv.find("style=dashed"), std::string::npos) << kv;
  EXPECT_NE(kv.find("k/v input of every layer"), std::string::npos) << kv;
  EXPECT_EQ(kv.find("/ decode step"), std::string::npos) << kv;
  // The all_reduces of the tensor-parallel encoder (two per layer, 32 layers) run in prefill
  // only: a loop on the encoder, plus the one on the dashed edge when the plan reduces there.
  const std::string inner = edge_line(dot, "model.encoder", "model.encoder");
  EXPECT_NE(inner.find("inside: <b>all_reduce</b>"), std::string::npos) << inner;
  EXPECT_NE(inner.find("in prefill only each"), std::string::npos) << inner;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(inner, m, std::regex("\u00d7([0-9]+)<"))) << inner;
  const int on_kv_edge = kv.find("all_reduce") != std::string::npos ? 1 : 0;
  EXPECT_EQ(std::stoi(m[1].str()) + on_kv_edge, 64) << inner << "\n" << kv;
  EXPECT_NE(dot.find("\"input:audio\" -> \"model.encoder\""), std::string::npos);
}

TEST(PlanDot, ExpertModeShowsDispatchAndCombine) {
  auto plan = shipped_plan("mixtral-8x7b-attn-dp8-ep8");
  ASSERT_TRUE(plan);
  const std::string dot = plan_to_dot(*plan);
  const std::string dispatch =
      edge_line(dot, "model.layers.*.self_attn@0-31", "model.layers.*.block_sparse_moe@0-31");
  EXPECT_NE(dispatch.find("[ep] dispatch \u00d732"), std::string::npos) << dispatch;
  const std::string moe = node_line(dot, "model.layers.*.block_sparse_moe@0-31");
  EXPECT_NE(moe.find("8 experts \u00f7 8 = 1 per rank"), std::string::npos) << moe;
  EXPECT_NE(moe.find(mode_colors(ParallelMode::kExpert).fill), std::string::npos);
}

TEST(PlanDot, MeshIsAGridOfRanksWithAxisNames) {
  auto plan = shipped_plan("llama-3-8b-dp2-tp4");
  ASSERT_TRUE(plan);
  const std::string dot = plan_to_dot(*plan);
  const auto start = dot.find("  mesh [");
  ASSERT_NE(start, std::string::npos);
  const std::string mesh = dot.substr(start, dot.find('\n', start) - start);
  EXPECT_NE(mesh.find("dp \u00d7 tp = 2 \u00d7 4 = 8 ranks"), std::string::npos) << mesh;
  // Row dp 1 holds ranks 4..7 (rank = dp * 4 + tp).
  EXPECT_NE(mesh.find("dp 1</font></td><td>4</td><td>5</td><td>6</td><td>7</td>"),
            std::string::npos)
      << mesh;
  EXPECT_NE(mesh.find("each row is one [tp] group, each column one [dp] group"), std::string::npos);
}

TEST(PlanDot, RanksViewShowsTheSliceEveryRankHolds) {
  auto plan = shipped_plan("llama-3-8b-dp2-tp4");
  ASSERT_TRUE(plan);
  DotOptions o;
  o.view = PlanView::kRanks;
  const std::string dot = plan_to_dot(*plan, o);
  // dp replicas hold the same slices: ranks 0 and 4 share a column.
  EXPECT_NE(dot.find("<b>ranks 0, 4</b>"), std::string::npos);
  EXPECT_NE(dot.find("<b>ranks 3, 7</b>"), std::string::npos);
  EXPECT_EQ(dot.find("<b>rank 0</b>"), std::string::npos);
  // k_proj [1024, 4096] by rows over tp = 4: 256 rows each, in tp order.
  const auto k = dot.find("self_attn.k_proj.weight</td>");
  ASSERT_NE(k, std::string::npos);
  const std::string row = dot.substr(k, dot.find("</tr>", k) - k);
  EXPECT_NE(row.find(">rows 0\u2013255</td>"), std::string::npos) << row;
  EXPECT_NE(row.find(">rows 768\u20131023</td>"), std::string::npos) << row;
  // o_proj by columns; a norm whole on every rank, one merged cell.
  EXPECT_NE(dot.find(">cols 3072\u20134095</td>"), std::string::npos);
  const auto norm = dot.find("input_layernorm.weight</td>");
  ASSERT_NE(norm, std::string::npos);
  EXPECT_NE(dot.substr(norm, 300).find("colspan=\"4\""), std::string::npos);
  EXPECT_EQ(dot.find("model.layers.1."), std::string::npos);
}

TEST(PlanDot, RanksViewFoldsExpertsAndShowsWhoOwnsThem) {
  auto plan = shipped_plan("mixtral-8x7b-ep8");
  ASSERT_TRUE(plan);
  DotOptions o;
  o.view = PlanView::kRanks;
  const std::string dot = plan_to_dot(*plan, o);
  EXPECT_NE(dot.find("block_sparse_moe.experts.*.w1.weight"), std::string::npos);
  EXPECT_EQ(dot.find("block_sparse_moe.experts.3.w1.weight"), std::string::npos);
  EXPECT_NE(dot.find(">expert 3</td>"), std::string::npos);
  EXPECT_NE(dot.find("experts over [ep]"), std::string::npos);
}

TEST(PlanDot, RanksViewTakesALayerAndRejectsOneTheModelLacks) {
  auto plan = shipped_plan("llama-3-8b-tp4");
  ASSERT_TRUE(plan);
  DotOptions o;
  o.view = PlanView::kRanks;
  o.layer = 7;
  const std::string dot = plan_to_dot(*plan, o);
  EXPECT_NE(dot.find("layer 7 (model.layers.7.*): which slice"), std::string::npos);
  o.layer = 32;
  try {
    plan_to_dot(*plan, o);
    FAIL() << "layer 32 accepted";
  } catch (const RenderError& e) {
    EXPECT_NE(std::string(e.what()).find("layer 32 is not in the model: its layers are 0-31"),
              std::string::npos)
        << e.what();
  }
  DotOptions modules;
  modules.layer = 3;
  EXPECT_THROW(plan_to_dot(*plan, modules), RenderError);
}

TEST(PlanDot, ManyRanksStayReadable) {
  // 32 ranks, every one holding different heads: the columns are cut at 16 with "…", and the
  // mesh grid too.
  auto plan = plan_of(temp_spec(R"(version: 1
name: tp 32
model:
  config: CONFIGS/llama-3-8b.json
mesh:
  tp: 32
modules:
  - kind: [embedding, attention, mlp, lm_head]
    mode: tensor
    axes: [tp]
)"));
  ASSERT_TRUE(plan);
  DotOptions o;
  o.view = PlanView::kRanks;
  const std::string dot = plan_to_dot(*plan, o);
  EXPECT_NE(dot.find("<b>rank 0</b>"), std::string::npos);
  EXPECT_NE(dot.find("<b>rank 11</b>"), std::string::npos);
  EXPECT_EQ(dot.find("<b>rank 12</b>"), std::string::npos);
  EXPECT_NE(dot.find("<b>rank 31</b>"), std::string::npos);
  EXPECT_NE(dot.find("<td>\u2026</td>"), std::string::npos);
  // Each KV head on 4 ranks: equal neighbours merge.
  const auto k = dot.find("self_attn.k_proj.weight</td>");
  ASSERT_NE(k, std::string::npos);
  EXPECT_NE(dot.substr(k, 400).find("colspan=\"4\" bgcolor=\"#cfe2f3\">rows 0\u2013127</td>"),
            std::string::npos)
      << dot.substr(k, 400);
  const std::string modules_dot = plan_to_dot(*plan);
  EXPECT_NE(modules_dot.find("tp 13</font>"), std::string::npos);
  EXPECT_EQ(modules_dot.find("tp 14</font>"), std::string::npos);
  EXPECT_NE(modules_dot.find("tp 31</font>"), std::string::npos);
}

TEST(SliceText, NamesTheRangeOfEachSplitDimension) {
  EXPECT_EQ(slice_text({1024, 4096}, ShardSlice{{256, 0}, {256, 4096}}), "rows 256\u2013511");
  EXPECT_EQ(slice_text({4096, 4096}, ShardSlice{{0, 1024}, {4096, 1024}}), "cols 1024\u20132047");
  EXPECT_EQ(slice_text({4096}, ShardSlice{{0}, {4096}}), "whole");
  EXPECT_EQ(slice_text({4096}, ShardSlice{{2048}, {2048}}), "2048\u20134095");
  EXPECT_EQ(slice_text({14336, 4096}, ShardSlice{{0, 0}, {0, 4096}}), "\u2014");
}

TEST(HtmlEscape, EscapesWhatAnHtmlLabelCannotHold) {
  EXPECT_EQ(html_escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
  EXPECT_EQ(html_escape("[{tp}, {}]"), "[{tp}, {}]");
}

TEST(PlanDot, NamesAreEscaped) {
  auto plan = plan_of(temp_spec(R"(version: 1
name: "tp <4> & \"quotes\""
model:
  config: CONFIGS/tiny-llama.json
mesh:
  tp: 2
modules:
  - kind: [attention, mlp]
    mode: tensor
    axes: [tp]
)"));
  ASSERT_TRUE(plan);
  const std::string dot = plan_to_dot(*plan);
  EXPECT_NE(dot.find("tp &lt;4&gt; &amp; &quot;quotes&quot;"), std::string::npos);
  EXPECT_EQ(dot.find("<4>"), std::string::npos);
}

}  // namespace
}  // namespace shardplan
