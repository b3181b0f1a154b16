// render_dot: every shipped spec renders to SVG and PNG in both views, without Graphviz
// warnings, the SVG byte-identical run after run; bad DOT is a RenderError with Graphviz's words.
#include "planner/render/graphviz_render.h"

#include <gtest/gtest.h>

#include "planner/render/plan_dot.h"
#include "planner/render/render_error.h"
#include "render_test_util.h"

namespace shardplan {
namespace {

// NOTE: how long rendering takes is measured by bench/ (planner_bench), not asserted here.
TEST(GraphvizRender, EveryShippedSpecRendersToSvgAndPng) {
  for (const std::string& spec : shipped_specs()) {
    for (PlanView view : {PlanView::kModules, PlanView::kRanks}) {
      for (ImageFormat format : {ImageFormat::kSvg, ImageFormat::kPng}) {
        if (format == ImageFormat::kPng && !png_supported()) continue;
        auto plan = shipped_plan(spec);
        ASSERT_TRUE(plan);
        DotOptions o;
        o.view = view;
        const RenderedImage image = render_dot(plan_to_dot(*plan, o), format);
        const std::string what = spec + (view == PlanView::kRanks ? " ranks " : " modules ") +
                                 (format == ImageFormat::kSvg ? "svg" : "png");
        EXPECT_TRUE(image.warnings.empty()) << what << ": " << image.warnings.front();
        if (format == ImageFormat::kSvg) {
          EXPECT_EQ(image.bytes.rfind("<?xml", 0), 0u) << what;
          EXPECT_NE(image.bytes.find("<svg width="), std::string::npos) << what;
          EXPECT_NE(image.bytes.find("</svg>"), std::string::npos) << what;
        } else {
          EXPECT_EQ(image.bytes.rfind("\x89PNG\r\n\x1a\n", 0), 0u) << what;
          EXPECT_GT(image.bytes.size(), 10000u) << what;
        }
      }
    }
  }
}

TEST(GraphvizRender, SvgIsTheSameBytesEveryTime) {
  auto plan = shipped_plan("whisper-large-v3-tp2");
  ASSERT_TRUE(plan);
  const std::string dot = plan_to_dot(*plan);
  const std::string first = render_dot(dot, ImageFormat::kSvg).bytes;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(render_dot(dot, ImageFormat::kSvg).bytes, first);
}

TEST(GraphvizRender, SvgNamesTheFontItsBoxesWereMeasuredIn) {
  // With the pango text layout the boxes fit DejaVu Sans (text_fit_test.sh checks it in a
  // browser); without it, Graphviz's built-in Helvetica widths, so the SVG asks for Helvetica.
  auto plan = shipped_plan("llama-3-8b-tp4");
  ASSERT_TRUE(plan);
  const std::string svg = render_dot(plan_to_dot(*plan), ImageFormat::kSvg).bytes;
  EXPECT_NE(svg.find(png_supported() ? "font-family=\"DejaVu Sans\"" : "font-family=\"Helvetica,sans-Serif\""),
            std::string::npos);
  EXPECT_EQ(svg.find(png_supported() ? "Helvetica" : "DejaVu"), std::string::npos);
  EXPECT_NE(svg.find(">all_reduce</text>"), std::string::npos);
  EXPECT_NE(svg.find("fill=\"#cfe2f3\""), std::string::npos);
}

TEST(GraphvizRender, BadDotIsAnErrorWithGraphvizsMessage) {
  try {
    render_dot("digraph { a -> ; }", ImageFormat::kSvg);
    FAIL() << "bad DOT rendered";
  } catch (const RenderError& e) {
    EXPECT_NE(std::string(e.what()).find("syntax error"), std::string::npos) << e.what();
  }
  // A good graph right after still renders: no error state is left behind.
  EXPECT_NE(render_dot("digraph { a -> b; }", ImageFormat::kSvg).bytes.find("<svg"),
            std::string::npos);
}

TEST(GraphvizRender, PngWithoutCairoIsAClearError) {
  if (png_supported()) GTEST_SKIP() << "this build has cairo";
  EXPECT_THROW(render_dot("digraph { a; }", ImageFormat::kPng), RenderError);
}

TEST(GraphvizRender, FormatsFromExtensions) {
  EXPECT_EQ(parse_image_format("svg"), ImageFormat::kSvg);
  EXPECT_EQ(parse_image_format("png"), ImageFormat::kPng);
  EXPECT_EQ(parse_image_format("jpg"), std::nullopt);
  EXPECT_EQ(parse_image_format(""), std::nullopt);
}

}  // namespace
}  // namespace shardplan
