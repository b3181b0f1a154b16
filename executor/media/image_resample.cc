// Pillow's convolution resize, for a window of the output (see image_resample.h).
#include "executor/media/image_resample.h"

#include <cmath>
#include <vector>

#include "executor/media/media_error.h"

namespace shardplan {
namespace {

// Fixed point of the weights: 32 bits less 8 for the pixel and 2 for the sign and for weights a
// little above 1 (a bicubic lobe); the accumulator stays inside int32 (kept in int64 here).
constexpr int kWeightBits = 22;

struct Filter {
  double support;  // in input pixels at scale 1
  double (*weight)(double);
};

double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= M_PI;
  return std::sin(x) / x;
}

// NOTE: the filters, their boundary comparisons and the order of each expression are Pillow's;
// a weight that differs in the last bit can move a fixed-point weight by one and a pixel by one.
double box_weight(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }
double bilinear_weight(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}
double hamming_weight(double x) {
  if (x < 0.0) x = -x;
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x = x * M_PI;
  return std::sin(x) / x * (0.54 + 0.46 * std::cos(x));
}
// Keys' cubic convolution with a = -0.5.
double bicubic_weight(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}
double lanczos_weight(double x) {
  if (-3.0 <= x && x < 3.0) return sinc(x) * sinc(x / 3);
  return 0.0;
}

Filter filter_of(ResampleFilter f) {
  switch (f) {
    case ResampleFilter::kBox: return {0.5, box_weight};
    case ResampleFilter::kBilinear: return {1.0, bilinear_weight};
    case ResampleFilter::kHamming: return {1.0, hamming_weight};
    case ResampleFilter::kBicubic: return {2.0, bicubic_weight};
    case ResampleFilter::kLanczos: return {3.0, lanczos_weight};
  }
  return {2.0, bicubic_weight};
}

// The input span and fixed-point weights of each output position in [first, first + count) of an
// axis resized from in_size to out_size.
struct AxisWeights {
  std::vector<int64_t> start;   // first input index
  std::vector<int64_t> length;  // number of input indices
  int64_t stride = 0;           // weights per output position
  std::vector<int32_t> weights;
};

AxisWeights axis_weights(int64_t in_size, int64_t out_size, int64_t first, int64_t count, const Filter& filter) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filter_scale = scale < 1.0 ? 1.0 : scale;
  const double support = filter.support * filter_scale;
  const double inv_filter_scale = 1.0 / filter_scale;
  AxisWeights w;
  w.stride = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  w.start.resize(count);
  w.length.resize(count);
  w.weights.assign(static_cast<size_t>(count * w.stride), 0);
  std::vector<double> k(static_cast<size_t>(w.stride));
  for (int64_t i = 0; i < count; ++i) {
    const int64_t o = first + i;
    const double center = (static_cast<double>(o) + 0.5) * scale;
    // NOTE: truncation toward zero, then clamping, as Pillow (a negative start becomes 0 either way).
    int64_t lo = static_cast<int64_t>(center - support + 0.5);
    if (lo < 0) lo = 0;
    int64_t hi = static_cast<int64_t>(center + support + 0.5);
    if (hi > in_size) hi = in_size;
    const int64_t n = hi - lo;
    double total = 0.0;
    for (int64_t j = 0; j < n; ++j) {
      const double v = filter.weight((static_cast<double>(j + lo) - center + 0.5) * inv_filter_scale);
      k[j] = v;
      total += v;
    }
    for (int64_t j = 0; j < n; ++j) {
      const double v = total != 0.0 ? k[j] / total : k[j];
      // Rounded half away from zero into kWeightBits of fraction.
      w.weights[i * w.stride + j] = static_cast<int32_t>(v < 0.0 ? -0.5 + v * (1 << kWeightBits)
                                                                 : 0.5 + v * (1 << kWeightBits));
    }
    w.start[i] = lo;
    w.length[i] = n;
  }
  return w;
}

uint8_t clip_to_8_bits(int64_t accumulated) {
  const int64_t v = accumulated >> kWeightBits;  // arithmetic shift: floor
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

}  // namespace

RgbImage resize_window(const RgbImage& image, int64_t out_width, int64_t out_height, int64_t x0, int64_t y0,
                       int64_t window_width, int64_t window_height, ResampleFilter filter_kind) {
  // Checks: positive sizes, a window inside the output.
  if (image.width <= 0 || image.height <= 0 || out_width <= 0 || out_height <= 0 || window_width <= 0 ||
      window_height <= 0 || x0 < 0 || y0 < 0 || x0 + window_width > out_width || y0 + window_height > out_height) {
    throw MediaError(MediaError::kBadContent, "resize_window: the window is not inside the resized image");
  }
  const Filter filter = filter_of(filter_kind);
  const int64_t rounding = int64_t{1} << (kWeightBits - 1);

  // NOTE: Pillow runs a pass only when its axis changes size, horizontal first; an unchanged axis
  // is copied (the convolution would be the identity there anyway).
  const bool horizontal = out_width != image.width;
  const bool vertical = out_height != image.height;

  const AxisWeights rows = vertical ? axis_weights(image.height, out_height, y0, window_height, filter) : AxisWeights{};
  // The input rows the window needs.
  const int64_t row_first = vertical ? rows.start.front() : y0;
  const int64_t row_last = vertical ? rows.start.back() + rows.length.back() : y0 + window_height;

  // Horizontal pass (or column selection) over those rows: a row_last - row_first x window_width image.
  const int64_t mid_height = row_last - row_first;
  std::vector<uint8_t> mid(static_cast<size_t>(mid_height * window_width * 3));
  if (horizontal) {
    const AxisWeights cols = axis_weights(image.width, out_width, x0, window_width, filter);
    for (int64_t y = 0; y < mid_height; ++y) {
      const uint8_t* in_row = &image.pixels[static_cast<size_t>((row_first + y) * image.width * 3)];
      uint8_t* out_row = &mid[static_cast<size_t>(y * window_width * 3)];
      for (int64_t x = 0; x < window_width; ++x) {
        const int32_t* k = &cols.weights[x * cols.stride];
        const uint8_t* p = in_row + cols.start[x] * 3;
        for (int c = 0; c < 3; ++c) {
          int64_t acc = rounding;
          for (int64_t j = 0; j < cols.length[x]; ++j) acc += int64_t{p[j * 3 + c]} * k[j];
          out_row[x * 3 + c] = clip_to_8_bits(acc);
        }
      }
    }
  } else {
    for (int64_t y = 0; y < mid_height; ++y) {
      const uint8_t* in_row = &image.pixels[static_cast<size_t>(((row_first + y) * image.width + x0) * 3)];
      std::copy(in_row, in_row + window_width * 3, &mid[static_cast<size_t>(y * window_width * 3)]);
    }
  }

  RgbImage out;
  out.width = window_width;
  out.height = window_height;
  out.source_mode = image.source_mode;
  out.orientation = image.orientation;
  if (!vertical) {
    out.pixels = std::move(mid);  // mid_height == window_height: the rows y0.. of the input
    return out;
  }
  out.pixels.resize(static_cast<size_t>(window_width * window_height * 3));
  for (int64_t y = 0; y < window_height; ++y) {
    const int32_t* k = &rows.weights[y * rows.stride];
    const int64_t first = rows.start[y] - row_first;
    for (int64_t x = 0; x < window_width * 3; ++x) {
      int64_t acc = rounding;
      for (int64_t j = 0; j < rows.length[y]; ++j) {
        acc += int64_t{mid[static_cast<size_t>((first + j) * window_width * 3 + x)]} * k[j];
      }
      out.pixels[static_cast<size_t>(y * window_width * 3 + x)] = clip_to_8_bits(acc);
    }
  }
  return out;
}

}  // namespace shardplan
