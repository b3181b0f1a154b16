// DOT -> SVG / PNG through libgvc with linked-in plugins (see graphviz_render.h).
#include "planner/render/graphviz_render.h"

#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>
#include <graphviz/gvplugin.h>

#include "planner/render/render_error.h"

// The plugin libraries linked into the binary (cmake/Dependencies.cmake: graphviz_gvc). Each
// exports one library struct under the name libltdl's preloading would look up.
extern "C" {
extern gvplugin_library_t gvplugin_dot_layout_LTX_library;
extern gvplugin_library_t gvplugin_core_LTX_library;
#ifdef SHARDPLAN_HAVE_CAIRO
extern gvplugin_library_t gvplugin_pango_LTX_library;
#endif
}

namespace shardplan {

namespace {

// The builtin tables handed to gvContextPlugins, null-terminated. With demand loading off,
// Graphviz installs exactly these and never reads the system's plugin config.
// With cairo, gvplugin_pango also brings the text layout: boxes are sized from the real font
// (kPlanFont's files, through fontconfig), not Graphviz's table of Helvetica widths, which is
// too narrow for bold text and for any font a viewer substitutes for Helvetica.
#ifdef SHARDPLAN_HAVE_CAIRO
lt_symlist_t kPlugins[] = {
    {"gvplugin_dot_layout_LTX_library", &gvplugin_dot_layout_LTX_library},
    {"gvplugin_core_LTX_library", &gvplugin_core_LTX_library},
    {"gvplugin_pango_LTX_library", &gvplugin_pango_LTX_library},
    {nullptr, nullptr},
};
#else
lt_symlist_t kPlugins[] = {
    {"gvplugin_dot_layout_LTX_library", &gvplugin_dot_layout_LTX_library},
    {"gvplugin_core_LTX_library", &gvplugin_core_LTX_library},
    {nullptr, nullptr},
};
#endif

// Graphviz reports through one process-wide callback, a message in pieces ("Error", ": ",
// "text\n"); it appends them here while a render runs.
// NOTE: that callback is global state in cgraph, so render_dot is not thread-safe.
std::string* g_messages = nullptr;

int collect_message(char* piece) {
  if (g_messages && piece) *g_messages += piece;
  return 0;
}

// The captured text, one message per line.
std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
    if (!line.empty()) out.push_back(line);
    start = end + 1;
  }
  return out;
}

// Installs the callback for its lifetime and restores the previous one.
class MessageCapture {
 public:
  explicit MessageCapture(std::string* sink) {
    g_messages = sink;
    previous_ = agseterrf(collect_message);
    previous_level_ = agseterr(AGWARN);
    agreseterrors();
  }
  ~MessageCapture() {
    agseterrf(previous_);
    agseterr(previous_level_);
    g_messages = nullptr;
  }
  MessageCapture(const MessageCapture&) = delete;
  MessageCapture& operator=(const MessageCapture&) = delete;

 private:
  agusererrf previous_;
  agerrlevel_t previous_level_;
};

std::string joined(const std::string& captured) {
  std::string out;
  for (const auto& m : split_lines(captured)) out += (out.empty() ? "" : "; ") + m;
  return out.empty() ? "no message" : out;
}

// Splits the captured messages: "Error:" ones fail the render, the rest are warnings.
bool is_error(const std::string& m) { return m.rfind("Error", 0) == 0; }

}  // namespace

std::optional<ImageFormat> parse_image_format(const std::string& extension) {
  if (extension == "svg") return ImageFormat::kSvg;
  if (extension == "png") return ImageFormat::kPng;
  return std::nullopt;
}

bool png_supported() {
#ifdef SHARDPLAN_HAVE_CAIRO
  return true;
#else
  return false;
#endif
}

RenderedImage render_dot(const std::string& dot, ImageFormat format) {
  if (format == ImageFormat::kPng) {
#ifndef SHARDPLAN_HAVE_CAIRO
    throw RenderError(
        "PNG needs Graphviz's cairo renderer (gvplugin_pango), which this build was made "
        "without; write .svg or .dot instead");
#endif
  }
  std::string messages;
  MessageCapture capture(&messages);

#ifdef SHARDPLAN_HAVE_CAIRO
  const std::string& text = dot;
#else
  // NOTE: without a text layout Graphviz knows the widths of Helvetica, Times and Courier only
  // (any other name gets Times's, too narrow for a sans-serif face).
  std::string text = dot;
  const std::string ours = std::string("fontname=\"") + kPlanFont + "\"", helvetica = "fontname=\"Helvetica\"";
  for (size_t at = text.find(ours); at != std::string::npos; at = text.find(ours, at + helvetica.size())) {
    text.replace(at, ours.size(), helvetica);
  }
#endif
  GVC_t* gvc = gvContextPlugins(kPlugins, 0);
  if (!gvc) throw RenderError("graphviz: cannot create a context");
  Agraph_t* graph = agmemread(text.c_str());
  if (!graph) {
    gvFreeContext(gvc);
    throw RenderError("graphviz could not read the DOT text: " + joined(messages));
  }
  auto fail = [&](const std::string& what, bool laid_out) {
    if (laid_out) gvFreeLayout(gvc, graph);
    agclose(graph);
    gvFreeContext(gvc);
    throw RenderError("graphviz " + what + ": " + joined(messages));
  };
  if (gvLayout(gvc, graph, "dot") != 0) fail("could not lay out the graph", false);
  char* data = nullptr;
  unsigned int length = 0;
  // svg:core writes text as <text> (cairo's SVG would draw every glyph as a path).
  const char* name = format == ImageFormat::kSvg ? "svg" : "png";
  if (gvRenderData(gvc, graph, name, &data, &length) != 0 || !data) {
    if (data) gvFreeRenderData(data);
    fail(std::string("could not render ") + name, true);
  }
  RenderedImage image;
  image.bytes.assign(data, length);
  gvFreeRenderData(data);
  gvFreeLayout(gvc, graph);
  agclose(graph);
  gvFreeContext(gvc);
  for (const auto& m : split_lines(messages)) {
    if (is_error(m)) throw RenderError("graphviz: " + joined(messages));
    image.warnings.push_back(m);
  }
  return image;
}

}  // namespace shardplan
