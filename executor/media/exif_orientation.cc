// EXIF / XMP orientation and the eight transpositions (see exif_orientation.h).
#include "executor/media/exif_orientation.h"

#include <cctype>
#include <cstring>

namespace shardplan {

int exif_block_orientation(const std::string& exif) {
  // Checks: the TIFF byte order mark ("II" or "MM"), IFD0's offset and entry count inside the
  // block, an Orientation entry of type SHORT or LONG with one value.
  size_t base = 0;
  if (exif.compare(0, 6, std::string("Exif\0\0", 6)) == 0) base = 6;
  const auto* b = reinterpret_cast<const uint8_t*>(exif.data()) + base;
  const size_t n = exif.size() - base;
  if (n < 8) return 0;
  bool little;
  if (b[0] == 'I' && b[1] == 'I') {
    little = true;
  } else if (b[0] == 'M' && b[1] == 'M') {
    little = false;
  } else {
    return 0;
  }
  const auto u16 = [&](size_t at) -> uint32_t {
    return little ? b[at] | (b[at + 1] << 8) : (b[at] << 8) | b[at + 1];
  };
  const auto u32 = [&](size_t at) -> uint32_t {
    return little ? u16(at) | (u16(at + 2) << 16) : (u16(at) << 16) | u16(at + 2);
  };
  const uint32_t ifd = u32(4);
  if (ifd > n || n - ifd < 2) return 0;
  const uint32_t entries = u16(ifd);
  for (uint32_t i = 0; i < entries; ++i) {
    const size_t at = size_t{ifd} + 2 + size_t{i} * 12;
    if (at + 12 > n) return 0;
    if (u16(at) != 0x0112) continue;
    const uint32_t type = u16(at + 2);
    const uint32_t count = u32(at + 4);
    if (count != 1) return 0;
    if (type == 3) return static_cast<int>(u16(at + 8));
    if (type == 4) return static_cast<int>(u32(at + 8) > 9 ? 9 : u32(at + 8));  // 9: not a transposition
    return 0;
  }
  return 0;
}

int xmp_orientation(const std::string& xmp) {
  static const std::string kTag = "tiff:Orientation";
  for (size_t at = xmp.find(kTag); at != std::string::npos; at = xmp.find(kTag, at + 1)) {
    size_t v = at + kTag.size();
    if (xmp.compare(v, 2, "=\"") == 0) {
      v += 2;
    } else if (xmp.compare(v, 1, ">") == 0) {
      v += 1;
    } else {
      continue;
    }
    if (v < xmp.size() && std::isdigit(static_cast<unsigned char>(xmp[v]))) return xmp[v] - '0';
  }
  return 0;
}

int image_orientation(const std::string& exif, const std::string& xmp) {
  // NOTE: Pillow reads XMP only when the EXIF block has no Orientation tag; a tag of 9 still counts
  // as present (and means no transposition).
  const int from_exif = exif.empty() ? 0 : exif_block_orientation(exif);
  if (from_exif != 0) return from_exif;
  const int from_xmp = xmp.empty() ? 0 : xmp_orientation(xmp);
  return from_xmp != 0 ? from_xmp : 1;
}

RgbImage apply_orientation(const RgbImage& image, int orientation) {
  if (orientation < 2 || orientation > 8) return image;
  const int64_t w = image.width;
  const int64_t h = image.height;
  const bool swaps = orientation >= 5;  // 5-8 exchange width and height
  RgbImage out;
  out.width = swaps ? h : w;
  out.height = swaps ? w : h;
  out.source_mode = image.source_mode;
  out.orientation = orientation;
  out.pixels.resize(image.pixels.size());
  for (int64_t y = 0; y < out.height; ++y) {
    for (int64_t x = 0; x < out.width; ++x) {
      // (sx, sy): the source pixel of output pixel (x, y).
      int64_t sx = x;
      int64_t sy = y;
      switch (orientation) {
        case 2: sx = w - 1 - x; break;                     // FLIP_LEFT_RIGHT
        case 3: sx = w - 1 - x; sy = h - 1 - y; break;     // ROTATE_180
        case 4: sy = h - 1 - y; break;                     // FLIP_TOP_BOTTOM
        case 5: sx = y; sy = x; break;                     // TRANSPOSE
        case 6: sx = y; sy = h - 1 - x; break;             // ROTATE_270 (90° clockwise)
        case 7: sx = w - 1 - y; sy = h - 1 - x; break;     // TRANSVERSE
        case 8: sx = w - 1 - y; sy = x; break;             // ROTATE_90 (90° counter-clockwise)
      }
      std::memcpy(&out.pixels[(y * out.width + x) * 3], &image.pixels[(sy * w + sx) * 3], 3);
    }
  }
  return out;
}

}  // namespace shardplan
