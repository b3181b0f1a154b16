// llava-1.5's image preprocessing, as transformers 5.17 does it without torchvision (its
// CLIPImageProcessor falls back to CLIPImageProcessorPil, the PIL/NumPy backend): load_image
// (EXIF orientation, convert("RGB")), resize so the shortest edge is `shortest_edge` (Pillow's
// resample), centre crop (zero padding where the image is smaller), rescale, normalise. Output:
// float32 [3, H, W], channels first. docs/media.md has the evidence of exactness.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "executor/media/image_resample.h"

namespace shardplan {

// The keys of a preprocessor_config.json that the processor uses (transformers' names).
struct ImageProcessorConfig {
  bool do_resize = true;
  // Either a shortest edge (the other edge keeps the aspect ratio, truncated) or a fixed size.
  int64_t shortest_edge = 336;
  int64_t resize_height = 0;
  int64_t resize_width = 0;
  ResampleFilter resample = ResampleFilter::kBicubic;
  bool do_center_crop = true;
  int64_t crop_height = 336;
  int64_t crop_width = 336;
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  std::array<double, 3> image_mean = {0.48145466, 0.4578275, 0.40821073};  // OPENAI_CLIP_MEAN
  std::array<double, 3> image_std = {0.26862954, 0.26130258, 0.27577711};   // OPENAI_CLIP_STD
  bool do_convert_rgb = true;

  // llava-1.5's processor (llava-hf/llava-1.5-7b-hf) with size and crop = `image_size`.
  static ImageProcessorConfig llava_defaults(int64_t image_size);
  // The keys of a parsed preprocessor_config.json over llava_defaults(336); `source` names it in
  // errors. Throws MediaError listing every problem.
  static ImageProcessorConfig from_json(const nlohmann::json& config, const std::string& source);
  // <model_dir>/preprocessor_config.json when it exists, else llava_defaults(vision_image_size).
  // When vision_image_size > 0 the output must be vision_image_size square (the vision tower's
  // input), else MediaError.
  static ImageProcessorConfig load(const std::string& model_dir, int64_t vision_image_size);
};

// float32 [3, height, width], channels first.
struct PixelValues {
  int64_t height = 0;
  int64_t width = 0;
  std::vector<float> values;
};

// The size resize gives an image of width x height: (height, width) of the result.
std::array<int64_t, 2> resized_size(const ImageProcessorConfig& config, int64_t height, int64_t width);

// An RGB image through resize, centre crop, rescale and normalise.
PixelValues preprocess_rgb(const RgbImage& image, const ImageProcessorConfig& config);

// The image file at `path` read (read_image_file) and preprocessed. Throws MediaError.
PixelValues preprocess_image(const std::string& path, const ImageProcessorConfig& config);

}  // namespace shardplan
