// The CLIP preprocessing's arithmetic (sizes, crop offsets, zero padding, rescale and normalise)
// and preprocessor_config.json parsing: defaults, every problem reported, unsupported options.
#include "executor/media/image_processor.h"

#include <cmath>

#include <gtest/gtest.h>

#include "executor/media/media_error.h"
#include "tests/executor/media/media_test_util.h"

namespace shardplan {
namespace {

std::pair<int, std::string> config_error(const nlohmann::json& config) {
  try {
    ImageProcessorConfig::from_json(config, "preprocessor_config.json");
  } catch (const MediaError& e) {
    return {e.exit_code(), e.what()};
  }
  return {0, "parsed"};
}

RgbImage constant(int64_t w, int64_t h, uint8_t v) {
  RgbImage image;
  image.width = w;
  image.height = h;
  image.pixels.assign(static_cast<size_t>(w * h * 3), v);
  return image;
}

TEST(ImageProcessorTest, ResizedSizeKeepsTheAspectWithATruncatedLongEdge) {
  const ImageProcessorConfig c = ImageProcessorConfig::llava_defaults(336);
  EXPECT_EQ(resized_size(c, 480, 640), (std::array<int64_t, 2>{336, 448}));   // landscape
  EXPECT_EQ(resized_size(c, 640, 480), (std::array<int64_t, 2>{448, 336}));   // portrait
  EXPECT_EQ(resized_size(c, 199, 337), (std::array<int64_t, 2>{336, 569}));   // 113232 / 199 = 569.005
  EXPECT_EQ(resized_size(c, 300, 1), (std::array<int64_t, 2>{100800, 336}));  // a 1-pixel-wide strip
  EXPECT_EQ(resized_size(c, 1, 1), (std::array<int64_t, 2>{336, 336}));
}

TEST(ImageProcessorTest, NormalisesAndPadsWithZeros) {
  // A constant 200 image, resized to a 40 shortest edge and cropped to 56: the 40 x 40 middle is
  // (200 / 255 - mean) / std, the 8-pixel border the normalised zero (transformers pads in uint8).
  ImageProcessorConfig c = ImageProcessorConfig::llava_defaults(56);
  c.shortest_edge = 40;
  const PixelValues p = preprocess_rgb(constant(90, 90, 200), c);
  ASSERT_EQ(p.height, 56);
  ASSERT_EQ(p.width, 56);
  for (int ch = 0; ch < 3; ++ch) {
    const float mean = static_cast<float>(c.image_mean[ch]), std = static_cast<float>(c.image_std[ch]);
    const float inside = (static_cast<float>(200.0 / 255.0) - mean) / std;
    const float border = (0.0f - mean) / std;
    EXPECT_EQ(p.values[(ch * 56 + 28) * 56 + 28], inside);
    EXPECT_EQ(p.values[(ch * 56 + 8) * 56 + 8], inside);
    EXPECT_EQ(p.values[(ch * 56 + 7) * 56 + 28], border);
    EXPECT_EQ(p.values[(ch * 56 + 28) * 56 + 48], border);
  }
}

TEST(ImageProcessorTest, ParsesLlavaConfig) {
  const nlohmann::json json = nlohmann::json::parse(R"({
    "crop_size": {"height": 224, "width": 224}, "do_center_crop": true, "do_convert_rgb": true,
    "do_normalize": true, "do_rescale": true, "do_resize": true, "image_mean": [0.5, 0.5, 0.5],
    "image_processor_type": "CLIPImageProcessor", "image_std": [0.25, 0.5, 1.0],
    "processor_class": "LlavaProcessor", "resample": 2, "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 224}})");
  const ImageProcessorConfig c = ImageProcessorConfig::from_json(json, "p.json");
  EXPECT_EQ(c.shortest_edge, 224);
  EXPECT_EQ(c.crop_height, 224);
  EXPECT_EQ(c.resample, ResampleFilter::kBilinear);
  EXPECT_EQ(c.image_std[0], 0.25);
  EXPECT_EQ(ImageProcessorConfig::from_json(nlohmann::json::parse(R"({"size": 300, "crop_size": 280})"), "p")
                .crop_width,
            280);
}

TEST(ImageProcessorTest, ReportsEveryProblemOfAConfig) {
  auto [code, message] = config_error(nlohmann::json::parse(
      R"({"resample": 9, "image_std": [0.2, 0.0, 0.3], "do_resize": "yes", "crop_size": {"height": 0, "width": 5}})"));
  EXPECT_EQ(code, 1);
  EXPECT_NE(message.find("4 problem(s)"), std::string::npos) << message;
  EXPECT_NE(message.find("resample must be a Pillow filter number from 0 to 5, not 9"), std::string::npos);
  EXPECT_NE(message.find("image_std must be finite and non-zero"), std::string::npos);
  EXPECT_NE(message.find("do_resize must be true or false"), std::string::npos);
  EXPECT_NE(message.find("crop_size.height must be an integer from 1 to 8192, not 0"), std::string::npos);
  std::tie(code, message) = config_error(nlohmann::json::parse(
      R"({"resample": 0, "size": {"longest_edge": 1000}, "image_processor_type": "LlavaNextImageProcessor"})"));
  EXPECT_EQ(code, 2);
  EXPECT_NE(message.find("resample 0 (NEAREST) (not supported)"), std::string::npos) << message;
  EXPECT_NE(message.find("LlavaNextImageProcessor"), std::string::npos) << message;
  EXPECT_NE(message.find("longest_edge"), std::string::npos) << message;
}

TEST(ImageProcessorTest, LoadsDefaultsOrTheFileAndChecksTheVisionSize) {
  const std::string dir = media_test::scratch_dir();
  const ImageProcessorConfig d = ImageProcessorConfig::load(dir, 56);  // no preprocessor_config.json
  EXPECT_EQ(d.shortest_edge, 56);
  EXPECT_EQ(d.crop_width, 56);
  EXPECT_EQ(d.resample, ResampleFilter::kBicubic);
  media_test::write_file(dir, "preprocessor_config.json", R"({"size": {"shortest_edge": 336},
      "crop_size": {"height": 336, "width": 336}})");
  EXPECT_EQ(ImageProcessorConfig::load(dir, 336).crop_height, 336);
  try {
    ImageProcessorConfig::load(dir, 56);
    FAIL() << "a 336 crop for a 56 vision tower was accepted";
  } catch (const MediaError& e) {
    EXPECT_EQ(e.exit_code(), 1);
    EXPECT_NE(std::string(e.what()).find("gives 336 x 336 images, but the vision tower takes 56 x 56"),
              std::string::npos)
        << e.what();
  }
  media_test::write_file(dir, "preprocessor_config.json", "{\"size\": ");
  EXPECT_THROW(ImageProcessorConfig::load(dir, 336), MediaError);
}

TEST(ImageProcessorTest, PreprocessesAFileToThreeChannels) {
  const PixelValues p = preprocess_image(media_test::fixture_path("photo_24x16.png"),
                                         ImageProcessorConfig::llava_defaults(56));
  EXPECT_EQ(p.height, 56);
  EXPECT_EQ(p.width, 56);
  EXPECT_EQ(p.values.size(), 3u * 56u * 56u);
  for (float v : p.values) ASSERT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace shardplan
