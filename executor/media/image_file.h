// Reading a request's image file (JPEG or PNG, through Debian's libjpeg-turbo and libpng) into
// 8-bit RGB, the way transformers' `load_image(path)` does with Pillow: the EXIF orientation applied
// (`ImageOps.exif_transpose`), then `Image.convert("RGB")` (alpha dropped, not composited; a 16-bit
// grey PNG clipped at 255; CMYK inverted and multiplied). docs/media.md lists the modes and limits.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shardplan {

// The limits on an image file (docs/media.md): its bytes, and its pixels before decoding.
inline constexpr int64_t kMaxImageFileBytes = int64_t{256} << 20;  // 256 MiB
// NOTE: Pillow's own decompression-bomb limit (2 * Image.MAX_IMAGE_PIXELS): what transformers
// refuses with DecompressionBombError, refused here too, before any pixel is decoded.
inline constexpr int64_t kMaxImagePixels = 178956970;
// NOTE: a progressive JPEG can carry thousands of tiny scans that each cost a pass over the whole
// coefficient buffer (libjpeg-turbo's djpeg -maxscans); real encoders write at most a few dozen.
inline constexpr int kMaxJpegScans = 1000;

// An 8-bit RGB image, rows top to bottom, pixels interleaved: pixels[(y * width + x) * 3 + c].
struct RgbImage {
  int64_t width = 0;
  int64_t height = 0;
  std::vector<uint8_t> pixels;
  // The Pillow mode the file decodes to before convert("RGB"): "RGB", "L", "LA", "P", "RGBA",
  // "I;16", "1", "CMYK".
  std::string source_mode;
  // The EXIF orientation (1-8) that was applied; 1 when the file has none.
  int orientation = 1;
};

// The file at `path` decoded to RGB with its EXIF orientation applied. Throws MediaError:
// unreadable (missing, not a regular file, over kMaxImageFileBytes, neither JPEG nor PNG: exit 2),
// or bad content (corrupt, truncated, over kMaxImagePixels: exit 1). Messages name the file.
RgbImage read_image_file(const std::string& path);

// The same for a file's bytes already in memory; `name` is used in messages.
RgbImage decode_image(const std::string& bytes, const std::string& name);

}  // namespace shardplan
