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

// The font plan pictures are drawn in: DejaVu Sans, installed with Graphviz on Debian
// (fonts-dejavu-core) and what fontconfig gives for "sans-serif" on most Linux machines; with
// Graphviz's pango text layout (png_supported()) the boxes are sized from its real widths and
// the SVG names it. render_dot lays DOT naming it out with Helvetica's built-in widths, and names
// Helvetica, in a build without pango.
inline constexpr const char* kPlanFont = "DejaVu Sans";

struct RenderedImage {
  std::string bytes;
  std::vector<std::string> warnings;  // what Graphviz warned about, one message each
};

// Lays out `dot` with the dot engine and renders it. With pango, SVG and PNG are laid out with
// the installed font's real widths (kPlanFont), so a picture is reproduced byte for byte on a
// machine with the same Graphviz, pango and DejaVu (Debian 12's, what scripts/setup.sh
// installs; CI's docs_pictures_current compares them); without pango, SVG is laid out with
// Graphviz's built-in Helvetica widths.
// Throws RenderError with Graphviz's messages when the text does not parse or cannot be laid out
// or rendered, and when PNG is asked for without cairo.
RenderedImage render_dot(const std::string& dot, ImageFormat format);

}  // namespace shardplan
