// Image decoding: the fixtures' sizes, modes and orientation; what is refused and with which exit
// code (truncated and corrupt JPEG / PNG, a FIFO, a directory, other formats, decompression bombs).
#include "executor/media/image_file.h"

#include <sys/stat.h>

#include <cstdint>
#include <string>

#include <gtest/gtest.h>

#include "executor/media/exif_orientation.h"
#include "executor/media/media_error.h"
#include "tests/executor/media/media_test_util.h"

namespace shardplan {
namespace {

using media_test::fixture_path;
using media_test::read_bytes;

// The exit code and message decode_image throws with.
std::pair<int, std::string> decode_error(const std::string& bytes) {
  try {
    decode_image(bytes, "test.img");
  } catch (const MediaError& e) {
    return {e.exit_code(), e.what()};
  }
  return {0, "decoded"};
}

std::pair<int, std::string> read_error(const std::string& path) {
  try {
    read_image_file(path);
  } catch (const MediaError& e) {
    return {e.exit_code(), e.what()};
  }
  return {0, "decoded"};
}

uint32_t crc32(const std::string& bytes) {
  uint32_t c = 0xffffffffu;
  for (unsigned char b : bytes) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void put_be32(std::string* s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) (*s)[at + i] = static_cast<char>((v >> (24 - 8 * i)) & 0xff);
}

TEST(ImageFileTest, DecodesJpegAndPngFixtures) {
  for (const char* name : {"photo_24x16.jpg", "photo_24x16.png", "photo_24x16_progressive.jpg"}) {
    const RgbImage image = read_image_file(fixture_path(name));
    EXPECT_EQ(image.width, 24) << name;
    EXPECT_EQ(image.height, 16) << name;
    EXPECT_EQ(image.source_mode, "RGB") << name;
    ASSERT_EQ(image.pixels.size(), 24u * 16u * 3u) << name;
  }
  // The PNG is lossless: pixel (x, y) = (10 x, 15 y, 5 (x + y)) (make_fixtures.py).
  const RgbImage png = read_image_file(fixture_path("photo_24x16.png"));
  const size_t at = (5 * 24 + 7) * 3;
  EXPECT_EQ(png.pixels[at + 0], 70);
  EXPECT_EQ(png.pixels[at + 1], 75);
  EXPECT_EQ(png.pixels[at + 2], 60);
}

TEST(ImageFileTest, AppliesExifOrientation) {
  // Orientation 6: shown rotated 90 degrees clockwise, so 16 wide and 24 high, and the input's
  // top-left pixel lands at the top-right.
  const RgbImage plain = read_image_file(fixture_path("photo_24x16.jpg"));
  const RgbImage turned = read_image_file(fixture_path("photo_24x16_orient6.jpg"));
  EXPECT_EQ(turned.orientation, 6);
  ASSERT_EQ(turned.width, 16);
  ASSERT_EQ(turned.height, 24);
  const RgbImage expected = apply_orientation(plain, 6);
  EXPECT_EQ(turned.pixels, expected.pixels);
  EXPECT_EQ(expected.pixels[(0 * 16 + 15) * 3], plain.pixels[0]);
}

TEST(ImageFileTest, OrientationsMoveTheTopLeftPixel) {
  // A 3 x 2 image whose pixel (x, y) has red 10 x + y: where each orientation puts pixel (0, 0).
  RgbImage image;
  image.width = 3;
  image.height = 2;
  for (int y = 0; y < 2; ++y) {
    for (int x = 0; x < 3; ++x) image.pixels.insert(image.pixels.end(), {uint8_t(10 * x + y), 0, 0});
  }
  // orientation -> (width, height, x, y) of the source's (0, 0) in the result
  const int expected[9][4] = {{0}, {3, 2, 0, 0}, {3, 2, 2, 0}, {3, 2, 2, 1}, {3, 2, 0, 1},
                              {2, 3, 0, 0}, {2, 3, 1, 0}, {2, 3, 1, 2}, {2, 3, 0, 2}};
  for (int o = 1; o <= 8; ++o) {
    const RgbImage r = apply_orientation(image, o);
    EXPECT_EQ(r.width, expected[o][0]) << o;
    EXPECT_EQ(r.height, expected[o][1]) << o;
    EXPECT_EQ(r.pixels[(expected[o][3] * r.width + expected[o][2]) * 3], 0) << o;
  }
  EXPECT_EQ(xmp_orientation("<rdf tiff:Orientation=\"8\"/>"), 8);
  EXPECT_EQ(xmp_orientation("<tiff:Orientation>3</tiff:Orientation>"), 3);
  EXPECT_EQ(xmp_orientation("tiff:OrientationX=\"8\""), 0);
  EXPECT_EQ(image_orientation("", ""), 1);
  EXPECT_EQ(exif_block_orientation(std::string("Exif\0\0II*\0", 10)), 0);  // cut short
  // IFD0 at offset 8 with one entry: Orientation (0x0112), SHORT, 1 value: 6; little and big endian.
  EXPECT_EQ(exif_block_orientation(std::string("II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0\x06\0\0\0", 22)), 6);
  EXPECT_EQ(exif_block_orientation(std::string("MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x03\0\0", 22)), 3);
}

TEST(ImageFileTest, RefusesTruncatedAndCorruptJpeg) {
  const std::string jpeg = read_bytes(fixture_path("photo_24x16.jpg"));
  auto [code, message] = decode_error(jpeg.substr(0, jpeg.size() * 6 / 10));
  EXPECT_EQ(code, 1);
  EXPECT_NE(message.find("not a valid JPEG: the file is truncated"), std::string::npos) << message;
  std::tie(code, message) = decode_error(jpeg.substr(0, 30));
  EXPECT_EQ(code, 1) << message;
  // The frame header's sample precision set to 12 bits.
  std::string bad = jpeg;
  const size_t sof = bad.find("\xff\xc0");
  ASSERT_NE(sof, std::string::npos);
  bad[sof + 4] = 12;
  std::tie(code, message) = decode_error(bad);
  EXPECT_EQ(code, 1);
  EXPECT_NE(message.find("test.img: not a valid JPEG"), std::string::npos) << message;
}

TEST(ImageFileTest, RefusesTruncatedAndCorruptPng) {
  const std::string png = read_bytes(fixture_path("photo_24x16.png"));
  auto [code, message] = decode_error(png.substr(0, png.size() / 2));
  EXPECT_EQ(code, 1);
  EXPECT_NE(message.find("not a valid PNG"), std::string::npos) << message;
  // A byte of the compressed image data changed: zlib's stream breaks (before libpng reaches the
  // chunk's CRC).
  std::string bad = png;
  const size_t idat = bad.find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  bad[idat + 6] = static_cast<char>(bad[idat + 6] ^ 0x55);
  std::tie(code, message) = decode_error(bad);
  EXPECT_EQ(code, 1);
  EXPECT_NE(message.find("not a valid PNG: IDAT: "), std::string::npos) << message;
}

TEST(ImageFileTest, RefusesDecompressionBombsBeforeDecoding) {
  // A JPEG claiming 60000 x 60000 pixels (its frame header patched) and a PNG claiming
  // 20000 x 20000 (IHDR patched, CRC recomputed): both over the 178956970-pixel limit.
  std::string jpeg = read_bytes(fixture_path("photo_24x16.jpg"));
  const size_t sof = jpeg.find("\xff\xc0");
  ASSERT_NE(sof, std::string::npos);
  for (size_t at : {sof + 5, sof + 7}) {
    jpeg[at] = static_cast<char>(60000 >> 8);
    jpeg[at + 1] = static_cast<char>(60000 & 0xff);
  }
  auto [code, message] = decode_error(jpeg);
  EXPECT_EQ(code, 1);
  EXPECT_NE(message.find("60000 x 60000 = 3600000000 pixels, more than the 178956970"), std::string::npos)
      << message;

  std::string png = read_bytes(fixture_path("photo_24x16.png"));
  const size_t ihdr = png.find("IHDR");
  put_be32(&png, ihdr + 4, 20000);
  put_be32(&png, ihdr + 8, 20000);
  put_be32(&png, ihdr + 17, crc32(png.substr(ihdr, 17)));
  std::tie(code, message) = decode_error(png);
  EXPECT_EQ(code, 1);
  EXPECT_NE(message.find("20000 x 20000 = 400000000 pixels"), std::string::npos) << message;
}

TEST(ImageFileTest, RefusesWhatIsNotAnImageFile) {
  const std::string dir = media_test::scratch_dir();
  auto [code, message] = read_error(media_test::write_file(dir, "a.gif", "GIF89a...."));
  EXPECT_EQ(code, 2);
  EXPECT_NE(message.find("neither a JPEG nor a PNG"), std::string::npos) << message;
  std::tie(code, message) = read_error(dir);
  EXPECT_EQ(code, 2);
  EXPECT_NE(message.find("a directory, not a regular file"), std::string::npos) << message;
  const std::string fifo = dir + "/fifo.jpg";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::tie(code, message) = read_error(fifo);  // refused without blocking on the open
  EXPECT_EQ(code, 2);
  EXPECT_NE(message.find("a FIFO, not a regular file"), std::string::npos) << message;
  std::tie(code, message) = read_error(dir + "/missing.png");
  EXPECT_EQ(code, 2);
  EXPECT_NE(message.find("cannot read image " + dir + "/missing.png"), std::string::npos) << message;
}

}  // namespace
}  // namespace shardplan
