// DOT text -> SVG / PNG bytes, laid out in process by Graphviz (libgvc) with the dot layout and
// the renderers linked into the binary: no installed plugin configuration is read.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace shardplan {

enum class ImageFormat { kSvg, kPng };

// "svg" / "png" (lower case), else nullopt.
std::optional<ImageFormat> parse_image_format(const std::string& extension);

// PNG needs Graphviz's cairo renderer (gvplugin_pango); SVG always works.
bool png_supported();

struct RenderedImage {
  std::string bytes;
  std::vector<std::string> warnings;  // what Graphviz warned about, one message each
};

// Lays out `dot` with the dot engine and renders it. SVG is deterministic and independent of the
// installed fonts: it is laid out with Graphviz's built-in font metrics (no text-layout plugin),
// so a picture committed on one machine is reproduced byte for byte on another with the same
// Graphviz. PNG is laid out and drawn with cairo/pango and the installed fonts.
// Throws RenderError with Graphviz's messages when the text does not parse or cannot be laid out
// or rendered, and when PNG is asked for without cairo.
RenderedImage render_dot(const std::string& dot, ImageFormat format);

}  // namespace shardplan
