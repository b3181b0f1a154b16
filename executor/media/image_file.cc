// JPEG (libjpeg-turbo) and PNG (libpng) decoding to Pillow's modes, then convert("RGB") and the
// EXIF orientation (see image_file.h).
//
// NOTE: both libraries report a fatal error through a callback that must not return (libjpeg's
// default one calls exit()). Ours longjmp back to the decode function, which then throws. The
// decode functions keep everything they own in a state struct allocated by their caller, so the
// longjmp skips no destructor and reads no local variable changed after setjmp.
#include "executor/media/image_file.h"

#include <csetjmp>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <memory>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "base/input_file.h"
#include "executor/media/exif_orientation.h"
#include "executor/media/media_error.h"

namespace shardplan {
namespace {

// A decoded file before convert("RGB"): `channels` interleaved samples per pixel (8-bit, or
// big-endian 16-bit for "I;16"), plus the metadata the orientation comes from.
struct RawImage {
  int64_t width = 0;
  int64_t height = 0;
  int channels = 0;
  std::string mode;
  std::vector<uint8_t> samples;
  std::string exif;
  std::string xmp;
};

std::string pixel_count_error(int64_t width, int64_t height) {
  return std::to_string(width) + " x " + std::to_string(height) + " = " + std::to_string(width * height) +
         " pixels, more than the " + std::to_string(kMaxImagePixels) + " an image may have";
}

// --- JPEG ---------------------------------------------------------------------------------------

struct JpegState {
  jpeg_decompress_struct cinfo{};
  jpeg_error_mgr err{};
  jpeg_progress_mgr progress{};
  std::jmp_buf jump{};
  char message[JMSG_LENGTH_MAX] = {0};
  RawImage image;
};

JpegState* jpeg_state(j_common_ptr cinfo) { return static_cast<JpegState*>(cinfo->client_data); }

void jpeg_fail(j_common_ptr cinfo) {
  (*cinfo->err->format_message)(cinfo, jpeg_state(cinfo)->message);
  std::longjmp(jpeg_state(cinfo)->jump, 1);
}

// Warnings (corrupt-data notices) are not printed; running out of data is an error.
// NOTE: Pillow refuses a truncated JPEG ("image file is truncated") and decodes through the other
// corrupt-data warnings (extraneous bytes before a marker) without a word; so do we.
void jpeg_message(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    std::snprintf(jpeg_state(cinfo)->message, JMSG_LENGTH_MAX, "the file is truncated (it ends inside the image data)");
    std::longjmp(jpeg_state(cinfo)->jump, 1);
  }
}

void jpeg_progress(j_common_ptr cinfo) {
  auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (d->input_scan_number > kMaxJpegScans) {
    std::snprintf(jpeg_state(cinfo)->message, JMSG_LENGTH_MAX, "more than %d progressive scans", kMaxJpegScans);
    std::longjmp(jpeg_state(cinfo)->jump, 1);
  }
}

// Decodes into s->image; false with s->message set on an error (the pixel limit included).
bool decode_jpeg_into(const std::string& bytes, JpegState* s) {
  s->cinfo.err = jpeg_std_error(&s->err);
  s->err.error_exit = jpeg_fail;
  s->err.emit_message = jpeg_message;
  s->cinfo.client_data = s;
  if (setjmp(s->jump) != 0) {
    jpeg_destroy_decompress(&s->cinfo);
    return false;
  }
  jpeg_create_decompress(&s->cinfo);
  s->progress.progress_monitor = jpeg_progress;
  s->cinfo.progress = &s->progress;
  jpeg_mem_src(&s->cinfo, reinterpret_cast<const unsigned char*>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  jpeg_save_markers(&s->cinfo, JPEG_APP0 + 1, 0xffff);
  jpeg_read_header(&s->cinfo, TRUE);

  RawImage& image = s->image;
  image.width = s->cinfo.image_width;
  image.height = s->cinfo.image_height;
  if (image.width * image.height > kMaxImagePixels) {
    std::snprintf(s->message, JMSG_LENGTH_MAX, "%s", pixel_count_error(image.width, image.height).c_str());
    jpeg_destroy_decompress(&s->cinfo);
    return false;
  }
  // Pillow's modes by the number of components; CMYK is read inverted ("CMYK;I", Adobe's
  // convention, whatever the markers say).
  switch (s->cinfo.num_components) {
    case 1: image.mode = "L"; s->cinfo.out_color_space = JCS_GRAYSCALE; break;
    case 3: image.mode = "RGB"; s->cinfo.out_color_space = JCS_RGB; break;
    case 4: image.mode = "CMYK"; s->cinfo.out_color_space = JCS_CMYK; break;
    default:
      std::snprintf(s->message, JMSG_LENGTH_MAX, "a JPEG with %d components (1, 3 or 4 are supported)",
                    s->cinfo.num_components);
      jpeg_destroy_decompress(&s->cinfo);
      return false;
  }
  // APP1 segments: the first "Exif\0\0" one (later ones appended without their header, as Pillow
  // does) and the last XMP packet.
  static const char kXmpHeader[] = "http://ns.adobe.com/xap/1.0/";  // followed by a NUL
  for (jpeg_saved_marker_ptr m = s->cinfo.marker_list; m != nullptr; m = m->next) {
    const std::string data(reinterpret_cast<const char*>(m->data), m->data_length);
    if (data.compare(0, 6, std::string("Exif\0\0", 6)) == 0) {
      image.exif += image.exif.empty() ? data : data.substr(6);
    } else if (data.size() >= sizeof kXmpHeader && data.compare(0, sizeof kXmpHeader, kXmpHeader, sizeof kXmpHeader) == 0) {
      image.xmp = data.substr(sizeof kXmpHeader);
    }
  }

  jpeg_start_decompress(&s->cinfo);
  image.channels = s->cinfo.output_components;
  const size_t row_bytes = static_cast<size_t>(image.width) * image.channels;
  image.samples.resize(row_bytes * static_cast<size_t>(image.height));
  while (s->cinfo.output_scanline < s->cinfo.output_height) {
    JSAMPROW row = image.samples.data() + row_bytes * s->cinfo.output_scanline;
    jpeg_read_scanlines(&s->cinfo, &row, 1);
  }
  jpeg_finish_decompress(&s->cinfo);
  jpeg_destroy_decompress(&s->cinfo);
  return true;
}

// --- PNG ----------------------------------------------------------------------------------------

struct PngState {
  png_structp png = nullptr;
  png_infop info = nullptr;
  const std::string* bytes = nullptr;
  size_t offset = 0;
  char message[256] = {0};
  std::vector<png_bytep> rows;
  RawImage image;
};

void png_fail(png_structp png, png_const_charp message) {
  auto* s = static_cast<PngState*>(png_get_error_ptr(png));
  std::snprintf(s->message, sizeof s->message, "%s", message);
  png_longjmp(png, 1);
}

void png_warn(png_structp, png_const_charp) {}

void png_read_bytes(png_structp png, png_bytep out, png_size_t length) {
  auto* s = static_cast<PngState*>(png_get_io_ptr(png));
  if (s->bytes->size() - s->offset < length) png_error(png, "the file is truncated");
  std::memcpy(out, s->bytes->data() + s->offset, length);
  s->offset += length;
}

bool decode_png_into(const std::string& bytes, PngState* s) {
  s->bytes = &bytes;
  s->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, s, png_fail, png_warn);
  if (s->png == nullptr) {
    std::snprintf(s->message, sizeof s->message, "libpng could not start");
    return false;
  }
  s->info = png_create_info_struct(s->png);
  if (s->info == nullptr) {
    png_destroy_read_struct(&s->png, nullptr, nullptr);
    std::snprintf(s->message, sizeof s->message, "libpng could not start");
    return false;
  }
  if (setjmp(png_jmpbuf(s->png)) != 0) {
    png_destroy_read_struct(&s->png, &s->info, nullptr);
    return false;
  }
  png_set_read_fn(s->png, s, png_read_bytes);
  png_read_info(s->png, s->info);

  RawImage& image = s->image;
  image.width = png_get_image_width(s->png, s->info);
  image.height = png_get_image_height(s->png, s->info);
  if (image.width * image.height > kMaxImagePixels) {
    std::snprintf(s->message, sizeof s->message, "%s", pixel_count_error(image.width, image.height).c_str());
    png_destroy_read_struct(&s->png, &s->info, nullptr);
    return false;
  }
  const int color_type = png_get_color_type(s->png, s->info);
  const int bit_depth = png_get_bit_depth(s->png, s->info);
  // Pillow's modes: grey 16-bit stays 16-bit ("I;16"); every other 16-bit sample keeps its high
  // byte ("RGB;16B" and the like: libpng's strip_16, not its rounding scale_16); grey of 1, 2, 4
  // bits is scaled to 8 ("1", "L;2", "L;4"); palette indices are looked up (libpng's expansion).
  switch (color_type) {
    case PNG_COLOR_TYPE_GRAY: image.mode = bit_depth == 16 ? "I;16" : bit_depth == 1 ? "1" : "L"; break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: image.mode = "LA"; break;
    case PNG_COLOR_TYPE_PALETTE: image.mode = "P"; break;
    case PNG_COLOR_TYPE_RGB: image.mode = "RGB"; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: image.mode = "RGBA"; break;
    default: image.mode = "?"; break;
  }
  if (bit_depth == 16 && color_type != PNG_COLOR_TYPE_GRAY) png_set_strip_16(s->png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(s->png);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(s->png);
  png_set_interlace_handling(s->png);
  png_read_update_info(s->png, s->info);

  image.channels = png_get_channels(s->png, s->info);
  const size_t row_bytes = png_get_rowbytes(s->png, s->info);
  image.samples.resize(row_bytes * static_cast<size_t>(image.height));
  s->rows.resize(static_cast<size_t>(image.height));
  for (int64_t y = 0; y < image.height; ++y) s->rows[y] = image.samples.data() + row_bytes * y;
  png_read_image(s->png, s->rows.data());
  // The chunks after the image data (text, eXIf) land in the same info struct.
  png_read_end(s->png, s->info);

  png_bytep exif = nullptr;
  png_uint_32 exif_length = 0;
  if (png_get_eXIf_1(s->png, s->info, &exif_length, &exif) != 0 && exif != nullptr) {
    image.exif.assign(reinterpret_cast<const char*>(exif), exif_length);
  }
  png_textp text = nullptr;
  int text_count = 0;
  png_get_text(s->png, s->info, &text, &text_count);
  for (int i = 0; i < text_count; ++i) {
    const std::string key = text[i].key;
    const size_t length = text[i].compression > 0 ? text[i].itxt_length : text[i].text_length;
    const std::string value(text[i].text, length);
    if (key == "XML:com.adobe.xmp") {
      image.xmp = value;
    } else if (key == "Raw profile type exif" && image.exif.empty()) {
      // ImageMagick's form: "\nexif\n<length>\n<hex digits over several lines>".
      size_t at = 0;
      for (int line = 0; line < 3 && at != std::string::npos; ++line) {
        at = value.find('\n', at);
        if (at != std::string::npos) ++at;
      }
      std::string hex;
      for (size_t i2 = at; at != std::string::npos && i2 < value.size(); ++i2) {
        if (std::isxdigit(static_cast<unsigned char>(value[i2]))) hex += value[i2];
      }
      for (size_t i2 = 0; i2 + 1 < hex.size(); i2 += 2) {
        image.exif += static_cast<char>(std::stoi(hex.substr(i2, 2), nullptr, 16));
      }
    }
  }
  png_destroy_read_struct(&s->png, &s->info, nullptr);
  return true;
}

// --- convert("RGB") -----------------------------------------------------------------------------

// Pillow's rounded a * b / 255 for 8-bit a, b.
uint8_t multiply_255(unsigned a, unsigned b) {
  const unsigned t = a * b + 128;
  return static_cast<uint8_t>((t + (t >> 8)) >> 8);
}

RgbImage convert_to_rgb(const RawImage& raw) {
  RgbImage out;
  out.width = raw.width;
  out.height = raw.height;
  out.source_mode = raw.mode;
  const size_t n = static_cast<size_t>(raw.width) * static_cast<size_t>(raw.height);
  out.pixels.resize(n * 3);
  const uint8_t* in = raw.samples.data();
  uint8_t* o = out.pixels.data();
  for (size_t i = 0; i < n; ++i, o += 3) {
    if (raw.mode == "I;16") {
      // NOTE: Pillow's I;16 -> RGB clips at 255 (a 16-bit grey PNG turns mostly white); that is what
      // transformers feeds the model, so it is what we feed it.
      const unsigned v = (in[i * 2] << 8) | in[i * 2 + 1];
      o[0] = o[1] = o[2] = static_cast<uint8_t>(v > 255 ? 255 : v);
    } else if (raw.mode == "CMYK") {
      // Stored inverted; Pillow's cmyk2rgb on the inverted values is (255 - c') (255 - k') / 255.
      const uint8_t* p = in + i * 4;
      o[0] = multiply_255(p[0], p[3]);
      o[1] = multiply_255(p[1], p[3]);
      o[2] = multiply_255(p[2], p[3]);
    } else if (raw.channels <= 2) {
      // L, LA, 1: the grey replicated, alpha dropped.
      o[0] = o[1] = o[2] = in[i * raw.channels];
    } else {
      // RGB, RGBA, P (expanded, with alpha where tRNS gave one): alpha dropped, not composited.
      std::memcpy(o, in + i * raw.channels, 3);
    }
  }
  return out;
}

}  // namespace

RgbImage decode_image(const std::string& bytes, const std::string& name) {
  static const unsigned char kJpegMagic[] = {0xff, 0xd8, 0xff};
  static const unsigned char kPngMagic[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  const auto starts_with = [&](const unsigned char* magic, size_t n) {
    return bytes.size() >= n && std::memcmp(bytes.data(), magic, n) == 0;
  };
  RawImage raw;
  if (starts_with(kJpegMagic, sizeof kJpegMagic)) {
    auto state = std::make_unique<JpegState>();
    if (!decode_jpeg_into(bytes, state.get())) {
      throw MediaError(MediaError::kBadContent, "image " + name + ": not a valid JPEG: " + state->message);
    }
    raw = std::move(state->image);
  } else if (starts_with(kPngMagic, sizeof kPngMagic)) {
    auto state = std::make_unique<PngState>();
    if (!decode_png_into(bytes, state.get())) {
      throw MediaError(MediaError::kBadContent, "image " + name + ": not a valid PNG: " + state->message);
    }
    raw = std::move(state->image);
  } else {
    throw MediaError(MediaError::kUnreadable,
                     "image " + name + ": neither a JPEG nor a PNG file (the formats supported: docs/media.md)");
  }
  const int orientation = image_orientation(raw.exif, raw.xmp);
  RgbImage rgb = convert_to_rgb(raw);
  return apply_orientation(rgb, orientation);
}

RgbImage read_image_file(const std::string& path) {
  std::string error;
  const std::optional<std::string> bytes = read_input_file(path, kMaxImageFileBytes, "an image file", &error);
  if (!bytes) throw MediaError(MediaError::kUnreadable, "cannot read image " + path + ": " + error);
  return decode_image(*bytes, path);
}

}  // namespace shardplan
