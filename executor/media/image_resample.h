// Resizing an 8-bit RGB image exactly as Pillow's `Image.resize` does (written from the algorithm,
// not from Pillow's source): a separable convolution, horizontal pass then vertical pass, whose
// filter support is widened by the downscale factor, with weights normalised per output pixel and
// turned into 22-bit fixed point, each pass rounding and clipping to 8 bits.
//
// Worked example: 640 -> 336 columns with bicubic (support 2): scale = 640 / 336 = 1.905, the
// support becomes 3.81 input pixels on each side; output column 0 has its centre at input 0.952
// and takes columns 0..4 (the window clipped at the left edge), weights normalised to sum 1.
#pragma once

#include <cstdint>

#include "executor/media/image_file.h"

namespace shardplan {

// Pillow's resampling filters, by their PIL.Image.Resampling numbers (NEAREST, 0, is not one).
enum class ResampleFilter { kLanczos = 1, kBilinear = 2, kBicubic = 3, kBox = 4, kHamming = 5 };

// A window of the image resized to out_width x out_height: columns [x0, x0 + window_width) and
// rows [y0, y0 + window_height) of it, which must lie inside it. Each pixel is the value the whole
// resize gives there (a pixel's weights depend on its position only).
// NOTE: a window because llava crops the resized image; a 1 x 4000 image resized to a shortest edge
// of 336 would otherwise be 336 x 1,344,000 pixels, of which the crop keeps 336 x 336.
RgbImage resize_window(const RgbImage& image, int64_t out_width, int64_t out_height, int64_t x0, int64_t y0,
                       int64_t window_width, int64_t window_height, ResampleFilter filter);

}  // namespace shardplan
