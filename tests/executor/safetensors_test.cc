// Safetensors reading: every malformed file is refused with its exit code and the numbers; slices
// copy the right elements and touch exactly their bytes; multi-file checkpoints through the index.
#include "executor/weights/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include <gtest/gtest.h>

#include "tests/executor/weights_test_util.h"

namespace shardplan {
namespace {

using testing::expect_weights_error;
using testing::float_bytes;
using testing::TempDir;
using testing::write_bytes;
using testing::write_safetensors;
using Code = WeightsError::Code;

// Two F32 tensors: a [2, 3] = 0..5 and b [2] = 10, 11.
void write_valid(const std::string& path) {
  write_safetensors(path,
                    R"({"__metadata__":{"format":"pt"},)"
                    R"("a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
                    R"("b":{"dtype":"F32","shape":[2],"data_offsets":[24,32]}})",
                    float_bytes({0, 1, 2, 3, 4, 5, 10, 11}));
}

TEST(SafetensorsTest, OpensAValidFileAndReadsItsTensors) {
  TempDir dir;
  write_valid(dir / "model.safetensors");
  Checkpoint ckpt = Checkpoint::open(dir.str());
  EXPECT_EQ(ckpt.tensor_names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(ckpt.contains("a"));
  EXPECT_FALSE(ckpt.contains("c"));
  const TensorInfo& a = ckpt.info("a");
  EXPECT_EQ(a.dtype, SafetensorsDType::kF32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.file, dir / "model.safetensors");
  EXPECT_EQ(a.nbytes(), 24u);
  std::vector<float> b(2);
  ckpt.read("b", b.data());
  EXPECT_EQ(b, (std::vector<float>{10, 11}));
  EXPECT_EQ(ckpt.bytes_touched(), 8u);
  // A single file can be opened directly too.
  EXPECT_EQ(Checkpoint::open(dir / "model.safetensors").tensor_names().size(), 2u);
}

TEST(SafetensorsTest, DtypeNamesRoundTrip) {
  for (const char* name : {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2"}) {
    std::optional<SafetensorsDType> dtype = parse_safetensors_dtype(name);
    ASSERT_TRUE(dtype) << name;
    EXPECT_STREQ(to_string(*dtype), name);
  }
  EXPECT_EQ(element_bytes(SafetensorsDType::kBF16), 2);
  EXPECT_EQ(element_bytes(SafetensorsDType::kF64), 8);
  EXPECT_EQ(element_bytes(SafetensorsDType::kF8E4M3), 1);
  EXPECT_FALSE(parse_safetensors_dtype("f32"));
}

TEST(SafetensorsTest, MissingPathIsAnIoError) {
  TempDir dir;
  expect_weights_error([&] { Checkpoint::open(dir / "nowhere"); }, Code::kIo, {dir / "nowhere", "does not exist"});
  EXPECT_EQ(WeightsError(Code::kIo, "").exit_code(), 2);
}

TEST(SafetensorsTest, DirectoryWithoutCheckpointFilesIsAnIoError) {
  TempDir dir;
  write_bytes(dir / "weights.bin", "x");
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kIo,
                       {dir.str(), "model.safetensors", "model.safetensors.index.json"});
}

TEST(SafetensorsTest, DirectoryInPlaceOfTheFileIsAnIoError) {
  TempDir dir;
  std::filesystem::create_directory(dir / "model.safetensors");
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kIo, {"model.safetensors", "not a regular file"});
}

// A FIFO or a device in place of the file is refused at once, never read (a FIFO would block
// until a writer came, /dev/zero would never end).
TEST(SafetensorsTest, FifoOrDeviceInPlaceOfTheFileIsRefusedWithoutBlocking) {
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir / "model.safetensors").c_str(), 0600), 0);
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kIo, {"model.safetensors", "not a regular file"});
  TempDir dev;
  std::filesystem::create_symlink("/dev/zero", dev / "model.safetensors");
  expect_weights_error([&] { Checkpoint::open(dev.str(), /*allow_links_outside=*/true); }, Code::kIo,
                       {"model.safetensors", "not a regular file"});
}

// A header nested far deeper than any real one is refused with a message, not a crash.
TEST(SafetensorsTest, DeeplyNestedHeaderIsInvalid) {
  TempDir dir;
  write_safetensors(dir / "model.safetensors", "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}",
                    "");
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kInvalid, {"not valid JSON", "nests deeper"});
}

TEST(SafetensorsTest, UnreadableFileIsAnIoError) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads files whatever their mode";
  TempDir dir;
  write_valid(dir / "model.safetensors");
  std::filesystem::permissions(dir / "model.safetensors", std::filesystem::perms::none);
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kIo, {"model.safetensors", "cannot open"});
}

TEST(SafetensorsTest, FileShorterThanTheLengthFieldIsInvalid) {
  TempDir dir;
  write_bytes(dir / "model.safetensors", std::string("\x10\x00\x00", 3));
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kInvalid,
                       {"model.safetensors", "3 bytes", "shorter than the 8-byte header length"});
  EXPECT_EQ(WeightsError(Code::kInvalid, "").exit_code(), 1);
}

TEST(SafetensorsTest, HeaderLengthBeyondTheFileIsInvalid) {
  TempDir dir;
  const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  // Claims 1000 bytes of header; the file has header.size() + 4 after the length field.
  write_bytes(dir / "model.safetensors", testing::u64_le(1000) + header + float_bytes({1}));
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kInvalid,
                       {"header length 1000", std::to_string(header.size() + 4) + " bytes after"});
}

TEST(SafetensorsTest, TruncatedFileIsInvalid) {
  TempDir dir;
  write_valid(dir / "model.safetensors");
  std::string bytes = testing::read_bytes(dir / "model.safetensors");
  write_bytes(dir / "model.safetensors", bytes.substr(0, bytes.size() - 6));  // b loses 6 of its 8 bytes
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kInvalid,
                       {"tensor 'b'", "[24, 32]", "data area of 26 bytes"});
}

TEST(SafetensorsTest, HeaderLengthOverTheLimitIsRefusedBeforeReading) {
  TempDir dir;
  const std::string path = dir / "model.safetensors";
  const uint64_t claimed = kMaxSafetensorsHeaderBytes + 1;
  write_bytes(path, testing::u64_le(claimed));
  // A sparse file large enough that only the 100 MB limit can refuse it.
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(8 + claimed + 16)), 0);
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kInvalid,
                       {"header length exceeds the limit of 100000000 bytes"});
  try {
    Checkpoint::open(dir.str());
  } catch (const WeightsError& e) {
    EXPECT_EQ(std::string(e.what()).find(std::to_string(claimed)), std::string::npos) << e.what();
  }
}

// The first 8 bytes of a file that is not a safetensors file are not its header length, and a
// message that printed them as a number would disclose them.
TEST(SafetensorsTest, NotSafetensorsErrorsDoNotDiscloseTheFirstBytes) {
  TempDir dir;
  const std::string secret = "hunter2!";  // 8 bytes, read as a huge header length
  uint64_t as_number = 0;
  for (int i = 7; i >= 0; --i) as_number = (as_number << 8) | static_cast<unsigned char>(secret[i]);
  write_bytes(dir / "model.safetensors", secret + "more text");
  try {
    Checkpoint::open(dir.str());
    FAIL() << "opened a file that is not a safetensors file";
  } catch (const WeightsError& e) {
    EXPECT_EQ(e.code(), Code::kInvalid);
    EXPECT_NE(std::string(e.what()).find("not a safetensors file"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find(std::to_string(as_number)), std::string::npos) << e.what();
  }
}

TEST(SafetensorsTest, MalformedHeaderJsonIsInvalid) {
  TempDir dir;
  write_safetensors(dir / "model.safetensors", R"({"a":{"dtype":"F32",)", "");
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kInvalid, {"model.safetensors", "not valid JSON"});
  write_safetensors(dir / "model.safetensors", "[1, 2]", "");
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kInvalid, {"header is JSON array"});
  write_safetensors(dir / "model.safetensors", R"({"a":{"dtype":"F32","shape":[1]}})", "");
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kInvalid, {"tensor 'a'", "missing 'data_offsets'"});
  write_safetensors(dir / "model.safetensors", R"({"__metadata__":{"format":1}})", "");
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kInvalid, {"__metadata__ 'format'", "expected a string"});
}

TEST(SafetensorsTest, UnknownDtypeIsInvalid) {
  TempDir dir;
  write_safetensors(dir / "model.safetensors", R"({"w":{"dtype":"F12","shape":[1],"data_offsets":[0,4]}})",
                    float_bytes({1}));
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kInvalid,
                       {"tensor 'w'", "unknown dtype \"F12\"", "BF16"});
}

TEST(SafetensorsTest, ShapeThatDoesNotMatchTheByteRangeIsInvalid) {
  TempDir dir;
  write_safetensors(dir / "model.safetensors", R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})",
                    std::string(20, '\0'));
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kInvalid,
                       {"tensor 'w'", "shape [2, 3] x F32", "= 24 bytes", "[0, 20] span 20 bytes"});
}

TEST(SafetensorsTest, BadShapeAndOffsetValuesAreInvalid) {
  TempDir dir;
  const std::string path = dir / "model.safetensors";
  write_safetensors(path, R"({"w":{"dtype":"F32","shape":[-2,3],"data_offsets":[0,24]}})", std::string(24, '\0'));
  expect_weights_error([&] { Checkpoint::open(path); }, Code::kInvalid, {"tensor 'w'", "entry 0 is negative (-2)"});
  write_safetensors(path, R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", std::string(8, '\0'));
  expect_weights_error([&] { Checkpoint::open(path); }, Code::kInvalid, {"is not an integer (2.5)"});
  // 2^40 * 2^40 * 4 bytes wraps to 0 in 64 bits: must not pass as an empty tensor.
  write_safetensors(path, R"({"w":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,0]}})", "");
  expect_weights_error([&] { Checkpoint::open(path); }, Code::kInvalid, {"more than 2^64 bytes"});
  write_safetensors(path, R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", std::string(8, '\0'));
  expect_weights_error([&] { Checkpoint::open(path); }, Code::kInvalid, {"[8, 4] begin after end"});
  write_safetensors(path, R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", std::string(8, '\0'));
  expect_weights_error([&] { Checkpoint::open(path); }, Code::kInvalid, {"expected [begin, end]"});
}

TEST(SafetensorsTest, OverlappingRangesAreInvalid) {
  TempDir dir;
  write_safetensors(dir / "model.safetensors",
                    R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                    R"("y":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
                    std::string(20, '\0'));
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kInvalid,
                       {"'x' [0, 16]", "'y' [12, 20]", "overlap"});
}

TEST(SafetensorsTest, EmptyTensorsOwnNoBytesAndGapsAreTolerated) {
  TempDir dir;
  write_safetensors(dir / "model.safetensors",
                    R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                    R"("e":{"dtype":"BF16","shape":[0,7],"data_offsets":[8,8]},)"
                    R"("y":{"dtype":"F32","shape":[1],"data_offsets":[20,24]}})",
                    float_bytes({1, 2, 3, 4, 0, 5}));
  Checkpoint ckpt = Checkpoint::open(dir.str());
  float y = 0;
  ckpt.read("y", &y);
  EXPECT_EQ(y, 5.0f);
  ckpt.read("e", nullptr);  // nothing to copy
  EXPECT_EQ(ckpt.bytes_touched(), 4u);
}

// A [1024, 4096] F32 tensor whose element (r, c) is r * 4096 + c (exact in float32).
class SliceTest : public ::testing::Test {
 protected:
  static constexpr int64_t kRows = 1024, kCols = 4096;
  void SetUp() override {
    std::vector<float> values(kRows * kCols);
    for (int64_t i = 0; i < kRows * kCols; ++i) values[i] = static_cast<float>(i);
    // t3: [4, 5, 10] = 0..199
    std::vector<float> t3(200);
    for (int i = 0; i < 200; ++i) t3[i] = static_cast<float>(i);
    const uint64_t big = kRows * kCols * 4;
    write_safetensors(dir_ / "model.safetensors",
                      R"({"w":{"dtype":"F32","shape":[1024,4096],"data_offsets":[0,)" + std::to_string(big) +
                          R"(]},"t3":{"dtype":"F32","shape":[4,5,10],"data_offsets":[)" + std::to_string(big) +
                          "," + std::to_string(big + 800) + R"(]},"s":{"dtype":"F32","shape":[],"data_offsets":[)" +
                          std::to_string(big + 800) + "," + std::to_string(big + 804) + "]}}",
                      float_bytes(values) + float_bytes(t3) + float_bytes({42}));
  }
  TempDir dir_;
};

TEST_F(SliceTest, RowBlockTouchesExactlyItsBytes) {
  Checkpoint ckpt = Checkpoint::open(dir_.str());
  std::vector<float> out(256 * kCols, -1);
  ckpt.read_slice("w", {256, 0}, {256, kCols}, out.data());
  EXPECT_EQ(ckpt.bytes_touched(), 256u * 4096 * 4);
  for (int64_t r = 0; r < 256; ++r) {
    ASSERT_EQ(out[r * kCols], static_cast<float>((256 + r) * kCols)) << r;
    ASSERT_EQ(out[r * kCols + kCols - 1], static_cast<float>((256 + r) * kCols + kCols - 1)) << r;
  }
}

TEST_F(SliceTest, ColumnBlockTouchesExactlyItsBytes) {
  Checkpoint ckpt = Checkpoint::open(dir_.str());
  std::vector<float> out(kRows * 1024, -1);
  ckpt.read_slice("w", {0, 1024}, {kRows, 1024}, out.data());
  EXPECT_EQ(ckpt.bytes_touched(), 1024u * 1024 * 4);
  for (int64_t r = 0; r < kRows; r += 97) {
    for (int64_t c = 0; c < 1024; c += 31) {
      ASSERT_EQ(out[r * 1024 + c], static_cast<float>(r * kCols + 1024 + c)) << r << "," << c;
    }
  }
  ckpt.reset_bytes_touched();
  EXPECT_EQ(ckpt.bytes_touched(), 0u);
}

TEST_F(SliceTest, ThreeDimensionalSliceAndScalar) {
  Checkpoint ckpt = Checkpoint::open(dir_.str());
  std::vector<float> out(2 * 2 * 4, -1);
  ckpt.read_slice("t3", {2, 1, 5}, {2, 2, 4}, out.data());
  std::vector<float> expected;
  for (int a = 2; a < 4; ++a)
    for (int b = 1; b < 3; ++b)
      for (int c = 5; c < 9; ++c) expected.push_back(static_cast<float>(a * 50 + b * 10 + c));
  EXPECT_EQ(out, expected);
  EXPECT_EQ(ckpt.bytes_touched(), 16u * 4);

  // Full trailing dimensions merge into one run: [1:3, :, :] is elements 50..149.
  std::vector<float> block(100);
  ckpt.read_slice("t3", {1, 0, 0}, {2, 5, 10}, block.data());
  EXPECT_EQ(block.front(), 50.0f);
  EXPECT_EQ(block.back(), 149.0f);

  float s = 0;
  ckpt.read_slice("s", {}, {}, &s);
  EXPECT_EQ(s, 42.0f);

  ckpt.reset_bytes_touched();
  ckpt.read_slice("w", {5, 5}, {0, 10}, nullptr);  // a rank that holds none of it
  EXPECT_EQ(ckpt.bytes_touched(), 0u);
}

TEST_F(SliceTest, SliceOutsideTheTensorIsRefused) {
  Checkpoint ckpt = Checkpoint::open(dir_.str());
  std::vector<float> out(4096);
  expect_weights_error([&] { ckpt.read_slice("w", {1020, 0}, {8, 1}, out.data()); }, Code::kInvalid,
                       {"offset [1020, 0] shape [8, 1]", "'w' of shape [1024, 4096]", "dimension 0"});
  expect_weights_error([&] { ckpt.read_slice("w", {0}, {1}, out.data()); }, Code::kInvalid, {"rank 2"});
  expect_weights_error([&] { ckpt.read_slice("w", {-1, 0}, {1, 1}, out.data()); }, Code::kInvalid, {"[-1, 0]"});
  expect_weights_error([&] { ckpt.read("nope", out.data()); }, Code::kInvalid, {"no tensor 'nope'"});
  EXPECT_EQ(ckpt.bytes_touched(), 0u);
}

// Two files and an index: a, b in the first; c in the second.
void write_two_files(const TempDir& dir) {
  write_safetensors(dir / "model-00001-of-00002.safetensors",
                    R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                    R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                    float_bytes({1, 2, 3}));
  write_safetensors(dir / "model-00002-of-00002.safetensors",
                    R"({"c":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})", float_bytes({4, 5, 6}));
}

TEST(SafetensorsIndexTest, ReadsTensorsFromEveryFile) {
  TempDir dir;
  write_two_files(dir);
  write_bytes(dir / "model.safetensors.index.json",
              R"({"metadata":{"total_size":24},"weight_map":{"a":"model-00001-of-00002.safetensors",)"
              R"("b":"model-00001-of-00002.safetensors","c":"model-00002-of-00002.safetensors"}})");
  Checkpoint ckpt = Checkpoint::open(dir.str());
  EXPECT_EQ(ckpt.files().size(), 2u);
  EXPECT_EQ(ckpt.tensor_names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ckpt.info("c").file, dir / "model-00002-of-00002.safetensors");
  std::vector<float> c(3);
  ckpt.read("c", c.data());
  EXPECT_EQ(c, (std::vector<float>{4, 5, 6}));
  std::vector<float> a(2);
  ckpt.read("a", a.data());
  EXPECT_EQ(a, (std::vector<float>{1, 2}));
}

TEST(SafetensorsIndexTest, SingleFileIsPreferredOverTheIndex) {
  TempDir dir;
  write_two_files(dir);
  write_bytes(dir / "model.safetensors.index.json", R"({"weight_map":{"c":"model-00002-of-00002.safetensors"}})");
  write_valid(dir / "model.safetensors");
  EXPECT_EQ(Checkpoint::open(dir.str()).tensor_names(), (std::vector<std::string>{"a", "b"}));
}

TEST(SafetensorsIndexTest, MissingShardIsAnIoError) {
  TempDir dir;
  write_two_files(dir);
  write_bytes(dir / "model.safetensors.index.json",
              R"({"weight_map":{"a":"model-00001-of-00002.safetensors","d":"model-00003-of-00003.safetensors"}})");
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kIo,
                       {"model-00003-of-00003.safetensors", "cannot open", "listed in model.safetensors.index.json"});
}

TEST(SafetensorsIndexTest, InconsistentIndexIsInvalid) {
  TempDir dir;
  write_two_files(dir);
  const std::string index = dir / "model.safetensors.index.json";
  write_bytes(index, R"({"weight_map":{"c":"model-00001-of-00002.safetensors"}})");
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kInvalid,
                       {"model-00001-of-00002.safetensors", "tensor 'c'", "does not hold it"});
  write_bytes(index, R"({"weight_map":{"a":"../model-00001-of-00002.safetensors"}})");
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kInvalid, {"plain file name"});
  write_bytes(index, R"({"weight_map":{"a":3}})");
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kInvalid, {"weight_map 'a' is 3"});
  write_bytes(index, R"({"metadata":{}})");
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kInvalid, {"\"weight_map\" object"});
  write_bytes(index, R"({"weight_map":)");
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kInvalid, {"index.json", "not valid JSON"});
}

TEST(SafetensorsIndexTest, TensorInTwoFilesIsInvalid) {
  TempDir dir;
  write_two_files(dir);
  write_safetensors(dir / "model-00002-of-00002.safetensors",
                    R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})", float_bytes({4, 5, 6}));
  write_bytes(dir / "model.safetensors.index.json",
              R"({"weight_map":{"b":"model-00001-of-00002.safetensors","a":"model-00002-of-00002.safetensors"}})");
  expect_weights_error([&] { Checkpoint::open(dir.str()); }, Code::kInvalid,
                       {"tensor 'a' is in both", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"});
}

// A checkpoint directory whose files are links: inside the directory they are followed, outside
// they are refused (kIo) unless the caller opts in; the same for the index and every shard.
TEST(SafetensorsContainmentTest, LinksOutsideTheCheckpointAreRefused) {
  namespace fs = std::filesystem;
  TempDir dir;
  fs::create_directories(dir / "ckpt");
  fs::create_directories(dir / "elsewhere");
  write_valid(dir / "elsewhere/secret.safetensors");

  // The single file links outside.
  fs::create_symlink(dir / "elsewhere/secret.safetensors", dir / "ckpt/model.safetensors");
  expect_weights_error([&] { Checkpoint::open(dir / "ckpt"); }, Code::kIo,
                       {"ckpt/model.safetensors", "outside the checkpoint directory", "--allow-links-outside-checkpoint"});
  EXPECT_EQ(Checkpoint::open(dir / "ckpt", /*allow_links_outside=*/true).tensor_names().size(), 2u);
  // A relative link that climbs out is refused just the same.
  fs::remove(dir / "ckpt/model.safetensors");
  fs::create_symlink("../elsewhere/secret.safetensors", dir / "ckpt/model.safetensors");
  expect_weights_error([&] { Checkpoint::open(dir / "ckpt"); }, Code::kIo, {"outside the checkpoint directory"});

  // A link that stays inside is followed; so is a checkpoint directory reached through a link.
  fs::remove(dir / "ckpt/model.safetensors");
  write_valid(dir / "ckpt/real.safetensors");
  fs::create_symlink("real.safetensors", dir / "ckpt/model.safetensors");
  EXPECT_EQ(Checkpoint::open(dir / "ckpt").tensor_names().size(), 2u);
  fs::create_directory_symlink(dir / "ckpt", dir / "ckpt-link");
  EXPECT_EQ(Checkpoint::open(dir / "ckpt-link").tensor_names().size(), 2u);
  fs::remove(dir / "ckpt/model.safetensors");

  // A shard listed by the index links outside.
  write_two_files(dir);  // in dir itself, outside ckpt/
  fs::create_symlink(dir / "model-00001-of-00002.safetensors", dir / "ckpt/model-00001-of-00002.safetensors");
  fs::copy_file(dir / "model-00002-of-00002.safetensors", dir / "ckpt/model-00002-of-00002.safetensors");
  const std::string index = R"({"weight_map":{"a":"model-00001-of-00002.safetensors",)"
                            R"("c":"model-00002-of-00002.safetensors"}})";
  write_bytes(dir / "ckpt/model.safetensors.index.json", index);
  expect_weights_error([&] { Checkpoint::open(dir / "ckpt"); }, Code::kIo,
                       {"model-00001-of-00002.safetensors", "outside the checkpoint directory"});
  EXPECT_EQ(Checkpoint::open(dir / "ckpt", true).tensor_names(), (std::vector<std::string>{"a", "b", "c"}));

  // The index itself links outside.
  fs::remove(dir / "ckpt/model-00001-of-00002.safetensors");
  fs::copy_file(dir / "model-00001-of-00002.safetensors", dir / "ckpt/model-00001-of-00002.safetensors");
  EXPECT_EQ(Checkpoint::open(dir / "ckpt").tensor_names().size(), 3u);
  write_bytes(dir / "elsewhere/index.json", index);
  fs::remove(dir / "ckpt/model.safetensors.index.json");
  fs::create_symlink(dir / "elsewhere/index.json", dir / "ckpt/model.safetensors.index.json");
  expect_weights_error([&] { Checkpoint::open(dir / "ckpt"); }, Code::kIo,
                       {"model.safetensors.index.json", "outside the checkpoint directory"});
}

}  // namespace
}  // namespace shardplan
