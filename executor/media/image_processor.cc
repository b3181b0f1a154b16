// CLIP preprocessing (transformers' CLIPImageProcessorPil) and preprocessor_config.json parsing
// (see image_processor.h).
#include "executor/media/image_processor.h"

#include <sys/stat.h>

#include <cmath>

#include "base/input_file.h"
#include "executor/media/image_file.h"
#include "executor/media/media_error.h"

namespace shardplan {
namespace {

// A side length a config may give (llava-1.5: 336).
constexpr int64_t kMaxSideLength = 8192;

// Python's floor division, for a negative numerator too.
int64_t floor_div2(int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

// Problems found in a config, reported together.
struct Problems {
  std::vector<std::string> messages;
  bool unsupported = false;  // some problem is "not supported" (exit 2) rather than wrong (exit 1)
  void bad(const std::string& m) { messages.push_back(m); }
  void not_supported(const std::string& m) {
    messages.push_back(m + " (not supported)");
    unsupported = true;
  }
};

void read_bool(const nlohmann::json& config, const char* key, bool* out, Problems* p) {
  if (!config.contains(key) || config[key].is_null()) return;
  if (!config[key].is_boolean()) {
    p->bad(std::string(key) + " must be true or false, not " + config[key].dump());
    return;
  }
  *out = config[key].get<bool>();
}

// A side length: an integer in [1, kMaxSideLength].
bool read_side(const nlohmann::json& value, const std::string& name, int64_t* out, Problems* p) {
  if (!value.is_number_integer() || value.get<int64_t>() < 1 || value.get<int64_t>() > kMaxSideLength) {
    p->bad(name + " must be an integer from 1 to " + std::to_string(kMaxSideLength) + ", not " + value.dump());
    return false;
  }
  *out = value.get<int64_t>();
  return true;
}

void read_channels(const nlohmann::json& config, const char* key, std::array<double, 3>* out, bool nonzero,
                   Problems* p) {
  if (!config.contains(key) || config[key].is_null()) return;
  const nlohmann::json& v = config[key];
  std::array<double, 3> values{};
  if (v.is_number()) {
    values.fill(v.get<double>());  // one value for every channel, as transformers allows
  } else if (v.is_array() && v.size() == 3 && v[0].is_number() && v[1].is_number() && v[2].is_number()) {
    for (int c = 0; c < 3; ++c) values[c] = v[c].get<double>();
  } else {
    p->bad(std::string(key) + " must be 3 numbers (one per RGB channel) or one number, not " + v.dump());
    return;
  }
  for (double x : values) {
    if (!std::isfinite(x) || (nonzero && x == 0.0)) {
      p->bad(std::string(key) + " must be finite" + (nonzero ? " and non-zero" : "") + ", not " + v.dump());
      return;
    }
  }
  *out = values;
}

}  // namespace

ImageProcessorConfig ImageProcessorConfig::llava_defaults(int64_t image_size) {
  ImageProcessorConfig c;
  c.shortest_edge = image_size;
  c.crop_height = image_size;
  c.crop_width = image_size;
  return c;
}

ImageProcessorConfig ImageProcessorConfig::from_json(const nlohmann::json& config, const std::string& source) {
  // Checks: an object; image_processor_type, when given, is CLIP's; the do_* keys are booleans;
  // size is {shortest_edge} or {height, width} (or one integer: the shortest edge) of sides in
  // [1, 8192]; crop_size is {height, width} (or one integer); resample is a Pillow filter other
  // than NEAREST (0); rescale_factor is a finite number; image_mean / image_std are 3 finite
  // numbers, std non-zero; do_pad and reducing_gap are not asked for.
  if (!config.is_object()) {
    throw MediaError(MediaError::kBadContent, source + ": not a JSON object");
  }
  ImageProcessorConfig c = llava_defaults(336);
  Problems p;
  if (config.contains("image_processor_type")) {
    const nlohmann::json& t = config["image_processor_type"];
    if (!t.is_string() || (t != "CLIPImageProcessor" && t != "CLIPImageProcessorPil")) {
      p.not_supported("image_processor_type " + t.dump() + ": only CLIPImageProcessor (llava-1.5's) is implemented");
    }
  }
  read_bool(config, "do_resize", &c.do_resize, &p);
  read_bool(config, "do_center_crop", &c.do_center_crop, &p);
  read_bool(config, "do_rescale", &c.do_rescale, &p);
  read_bool(config, "do_normalize", &c.do_normalize, &p);
  read_bool(config, "do_convert_rgb", &c.do_convert_rgb, &p);
  if (config.contains("size") && !config["size"].is_null()) {
    const nlohmann::json& s = config["size"];
    if (s.is_number_integer()) {
      read_side(s, "size", &c.shortest_edge, &p);
    } else if (s.is_object() && s.size() == 1 && s.contains("shortest_edge")) {
      read_side(s["shortest_edge"], "size.shortest_edge", &c.shortest_edge, &p);
    } else if (s.is_object() && s.size() == 2 && s.contains("height") && s.contains("width")) {
      c.shortest_edge = 0;
      read_side(s["height"], "size.height", &c.resize_height, &p);
      read_side(s["width"], "size.width", &c.resize_width, &p);
    } else {
      p.not_supported("size " + s.dump() + ": only {\"shortest_edge\": N} and {\"height\": H, \"width\": W}");
    }
  }
  if (config.contains("crop_size") && !config["crop_size"].is_null()) {
    const nlohmann::json& s = config["crop_size"];
    if (s.is_number_integer()) {
      if (read_side(s, "crop_size", &c.crop_height, &p)) c.crop_width = c.crop_height;
    } else if (s.is_object() && s.size() == 2 && s.contains("height") && s.contains("width")) {
      read_side(s["height"], "crop_size.height", &c.crop_height, &p);
      read_side(s["width"], "crop_size.width", &c.crop_width, &p);
    } else {
      p.bad("crop_size must be {\"height\": H, \"width\": W} or one integer, not " + s.dump());
    }
  }
  if (config.contains("resample") && !config["resample"].is_null()) {
    const nlohmann::json& r = config["resample"];
    if (!r.is_number_integer() || r.get<int64_t>() < 0 || r.get<int64_t>() > 5) {
      p.bad("resample must be a Pillow filter number from 0 to 5, not " + r.dump());
    } else if (r.get<int64_t>() == 0) {
      p.not_supported("resample 0 (NEAREST)");
    } else {
      c.resample = static_cast<ResampleFilter>(r.get<int64_t>());
    }
  }
  if (config.contains("rescale_factor") && !config["rescale_factor"].is_null()) {
    const nlohmann::json& r = config["rescale_factor"];
    if (!r.is_number() || !std::isfinite(r.get<double>())) {
      p.bad("rescale_factor must be a finite number, not " + r.dump());
    } else {
      c.rescale_factor = r.get<double>();
    }
  }
  read_channels(config, "image_mean", &c.image_mean, false, &p);
  read_channels(config, "image_std", &c.image_std, true, &p);
  if (config.contains("do_pad") && config["do_pad"] == true) p.not_supported("do_pad true");
  if (config.contains("reducing_gap") && !config["reducing_gap"].is_null()) p.not_supported("reducing_gap");
  if (!p.messages.empty()) {
    std::string message = source + ": " + std::to_string(p.messages.size()) + " problem(s):";
    for (const std::string& m : p.messages) message += "\n  " + m;
    throw MediaError(p.unsupported ? MediaError::kUnreadable : MediaError::kBadContent, message);
  }
  return c;
}

ImageProcessorConfig ImageProcessorConfig::load(const std::string& model_dir, int64_t vision_image_size) {
  const std::string path = model_dir + "/preprocessor_config.json";
  ImageProcessorConfig c;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (vision_image_size <= 0) {
      throw MediaError(MediaError::kBadContent, model_dir + " has no preprocessor_config.json and no image size "
                                                            "was given for the defaults");
    }
    c = llava_defaults(vision_image_size);
  } else {
    std::string error;
    const std::optional<std::string> text = read_input_file(path, kMaxConfigBytes, "a config", &error);
    if (!text) throw MediaError(MediaError::kUnreadable, "cannot read " + path + ": " + error);
    nlohmann::json json;
    try {
      json = parse_json_limited(*text);
    } catch (const std::runtime_error& e) {
      throw MediaError(MediaError::kUnreadable, path + " is not valid JSON: " + e.what());
    }
    c = from_json(json, path);
  }
  if (vision_image_size > 0) {
    // The output must be the vision tower's square input: a crop, or a fixed resize without one.
    int64_t h = 0, w = 0;
    if (c.do_center_crop) {
      h = c.crop_height;
      w = c.crop_width;
    } else if (c.do_resize && c.shortest_edge == 0) {
      h = c.resize_height;
      w = c.resize_width;
    }
    if (h != vision_image_size || w != vision_image_size) {
      const std::string got = h == 0 ? std::string("images of varying size (no crop, no fixed resize)")
                                     : std::to_string(h) + " x " + std::to_string(w) + " images";
      throw MediaError(MediaError::kBadContent, path + " gives " + got + ", but the vision tower takes " +
                                                    std::to_string(vision_image_size) + " x " +
                                                    std::to_string(vision_image_size));
    }
  }
  return c;
}

std::array<int64_t, 2> resized_size(const ImageProcessorConfig& config, int64_t height, int64_t width) {
  if (!config.do_resize) return {height, width};
  if (config.shortest_edge == 0) return {config.resize_height, config.resize_width};
  // transformers' get_resize_output_image_size(default_to_square=False): the long edge is
  // int(size * long / short), the division in double precision.
  const int64_t short_edge = width <= height ? width : height;
  const int64_t long_edge = width <= height ? height : width;
  const int64_t new_long = static_cast<int64_t>(static_cast<double>(config.shortest_edge * long_edge) /
                                                static_cast<double>(short_edge));
  if (width <= height) return {new_long, config.shortest_edge};
  return {config.shortest_edge, new_long};
}

PixelValues preprocess_rgb(const RgbImage& image, const ImageProcessorConfig& config) {
  const auto [rh, rw] = resized_size(config, image.height, image.width);
  const int64_t out_h = config.do_center_crop ? config.crop_height : rh;
  const int64_t out_w = config.do_center_crop ? config.crop_width : rw;
  if (out_h * out_w > kMaxImagePixels) {
    throw MediaError(MediaError::kBadContent, "the preprocessed image would be " + std::to_string(out_h) + " x " +
                                                  std::to_string(out_w) + " pixels, more than " +
                                                  std::to_string(kMaxImagePixels));
  }
  // transformers' center_crop: output pixel (i, j) is resized pixel (i + top, j + left) with
  // top = (rh - crop) // 2 (negative where the image is smaller: zero padding, ceil on the top).
  const int64_t top = config.do_center_crop ? floor_div2(rh - out_h) : 0;
  const int64_t left = config.do_center_crop ? floor_div2(rw - out_w) : 0;
  const int64_t y_lo = std::max<int64_t>(0, top), y_hi = std::min(rh, top + out_h);
  const int64_t x_lo = std::max<int64_t>(0, left), x_hi = std::min(rw, left + out_w);
  const RgbImage window = resize_window(image, rw, rh, x_lo, y_lo, x_hi - x_lo, y_hi - y_lo, config.resample);

  // rescale: float64 product, then float32 (np_rescale); normalize: float32 (x - mean) / std.
  std::array<float, 3> mean{}, std{};
  for (int c = 0; c < 3; ++c) {
    mean[c] = static_cast<float>(config.image_mean[c]);
    std[c] = static_cast<float>(config.image_std[c]);
  }
  std::array<float, 256> level{};
  for (int v = 0; v < 256; ++v) {
    level[v] = config.do_rescale ? static_cast<float>(static_cast<double>(v) * config.rescale_factor)
                                 : static_cast<float>(v);
  }
  PixelValues out;
  out.height = out_h;
  out.width = out_w;
  out.values.resize(static_cast<size_t>(3 * out_h * out_w));
  for (int c = 0; c < 3; ++c) {
    for (int64_t i = 0; i < out_h; ++i) {
      for (int64_t j = 0; j < out_w; ++j) {
        const int64_t y = i + top, x = j + left;
        const bool inside = y >= y_lo && y < y_hi && x >= x_lo && x < x_hi;
        const uint8_t v = inside ? window.pixels[static_cast<size_t>(((y - y_lo) * window.width + (x - x_lo)) * 3 + c)] : 0;
        float r = level[v];
        if (config.do_normalize) r = (r - mean[c]) / std[c];
        out.values[static_cast<size_t>((c * out_h + i) * out_w + j)] = r;
      }
    }
  }
  return out;
}

PixelValues preprocess_image(const std::string& path, const ImageProcessorConfig& config) {
  const RgbImage image = read_image_file(path);
  if (!config.do_convert_rgb && image.source_mode != "RGB") {
    throw MediaError(MediaError::kUnreadable, "image " + path + " is " + image.source_mode +
                                                  ", and do_convert_rgb false is supported for RGB images only");
  }
  return preprocess_rgb(image, config);
}

}  // namespace shardplan
