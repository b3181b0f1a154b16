// Pillow's resize: a worked example by hand, the identity, constants kept, and the window equal
// to the same region of the whole resize (the differential test compares with Pillow itself).
#include "executor/media/image_resample.h"

#include <gtest/gtest.h>

namespace shardplan {
namespace {

RgbImage grey_row(const std::vector<uint8_t>& values, int64_t height = 1) {
  RgbImage image;
  image.width = static_cast<int64_t>(values.size());
  image.height = height;
  for (int64_t y = 0; y < height; ++y) {
    for (uint8_t v : values) image.pixels.insert(image.pixels.end(), {v, v, v});
  }
  return image;
}

RgbImage resize(const RgbImage& image, int64_t w, int64_t h, ResampleFilter f) {
  return resize_window(image, w, h, 0, 0, w, h, f);
}

TEST(ImageResampleTest, WorkedExampleBilinearHalving) {
  // 4 -> 2 columns, bilinear: scale 2 widens the support to 2 input pixels. Output 0 is centred at
  // input 1.0 and covers inputs 0..2 with triangle weights 0.75, 0.75, 0.25 (normalised: 3/7, 3/7,
  // 1/7): 100 * 3/7 + 200 / 7 = 71.4 -> 71. Output 1 (centre 3.0) covers 1..3 with 0.25, 0.75,
  // 0.75: (100 + 3 * 200 + 3 * 50) / 7 = 121.4 -> 121.
  const RgbImage out = resize(grey_row({0, 100, 200, 50}), 2, 1, ResampleFilter::kBilinear);
  ASSERT_EQ(out.width, 2);
  EXPECT_EQ(out.pixels[0], 71);
  EXPECT_EQ(out.pixels[3], 121);
}

TEST(ImageResampleTest, SameSizeIsTheIdentityAndConstantsStayConstant) {
  const RgbImage ramp = grey_row({0, 30, 60, 90, 120, 150, 180, 210, 240}, 5);
  EXPECT_EQ(resize(ramp, 9, 5, ResampleFilter::kBicubic).pixels, ramp.pixels);
  for (ResampleFilter f : {ResampleFilter::kLanczos, ResampleFilter::kBilinear, ResampleFilter::kBicubic,
                           ResampleFilter::kBox, ResampleFilter::kHamming}) {
    for (auto [w, h] : {std::pair<int64_t, int64_t>{3, 2}, {17, 11}, {1, 1}, {40, 3}}) {
      const RgbImage out = resize(grey_row(std::vector<uint8_t>(9, 77), 5), w, h, f);
      for (uint8_t v : out.pixels) ASSERT_EQ(v, 77) << static_cast<int>(f) << " " << w << "x" << h;
    }
  }
}

TEST(ImageResampleTest, BicubicOvershootIsClipped) {
  // A step 0 -> 255 upscaled with bicubic (negative lobes) rings; the result stays in [0, 255] and
  // the ring shows as clipped values next to the step, not as wrapped-around ones.
  const RgbImage out = resize(grey_row({0, 0, 0, 255, 255, 255}), 24, 1, ResampleFilter::kBicubic);
  EXPECT_EQ(out.pixels[0], 0);
  EXPECT_EQ(out.pixels[23 * 3], 255);
  for (int64_t x = 1; x < 24; ++x) EXPECT_GE(out.pixels[x * 3], out.pixels[(x - 1) * 3]) << x;
}

TEST(ImageResampleTest, WindowEqualsTheSameRegionOfTheWholeResize) {
  RgbImage image;
  image.width = 37;
  image.height = 23;
  for (int64_t i = 0; i < 37 * 23 * 3; ++i) image.pixels.push_back(static_cast<uint8_t>((i * 7919) % 251));
  for (auto [w, h] : {std::pair<int64_t, int64_t>{20, 11}, {90, 61}, {37, 50}, {15, 23}}) {
    const RgbImage whole = resize(image, w, h, ResampleFilter::kBicubic);
    const int64_t x0 = w / 3, y0 = h / 4, ww = w / 2, wh = h / 2;
    const RgbImage window = resize_window(image, w, h, x0, y0, ww, wh, ResampleFilter::kBicubic);
    for (int64_t y = 0; y < wh; ++y) {
      for (int64_t x = 0; x < ww * 3; ++x) {
        ASSERT_EQ(window.pixels[y * ww * 3 + x], whole.pixels[(y + y0) * w * 3 + x0 * 3 + x]) << w << "x" << h;
      }
    }
  }
}

}  // namespace
}  // namespace shardplan
