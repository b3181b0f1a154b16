// Random checkpoints: the same seed gives the same bytes (pinned), values do not depend on the
// split into files, the format is the reference writer's, and rewrites never mix checkpoints.
#include "executor/weights/checkpoint_writer.h"

#include <cmath>
#include <cstring>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "executor/weights/half_float.h"
#include "executor/weights/safetensors.h"
#include "tests/executor/weights_test_util.h"

namespace shardplan {
namespace {

using testing::read_bytes;
using testing::TempDir;
namespace fs = std::filesystem;

uint64_t fnv1a(const std::string& bytes) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001B3ull;
  }
  return h;
}

// Bytes after the header of a .safetensors file.
uint64_t data_bytes(const std::string& path) {
  const std::string bytes = read_bytes(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  return bytes.size() - 8 - n;
}

std::vector<float> read_floats(const Checkpoint& ckpt, const std::string& name) {
  std::vector<float> values(ckpt.info(name).numel());
  ckpt.read(name, values.data());
  return values;
}

TEST(CheckpointWriterTest, SameSeedSameBytesDifferentSeedDifferentBytes) {
  TempDir dir;
  const ModelGraph graph = testing::tiny_graph();
  write_random_checkpoint(graph, dir / "a", 42, DType::kBFloat16);
  write_random_checkpoint(graph, dir / "b", 42, DType::kBFloat16);
  write_random_checkpoint(graph, dir / "c", 43, DType::kBFloat16);
  const std::string a = read_bytes(dir / "a/model.safetensors");
  ASSERT_GT(a.size(), 1000u);
  EXPECT_EQ(a, read_bytes(dir / "b/model.safetensors"));
  const std::string c = read_bytes(dir / "c/model.safetensors");
  ASSERT_EQ(a.size(), c.size());
  EXPECT_NE(a, c);
  // Not just one tensor: every tensor's data differs between seeds.
  Checkpoint ca = Checkpoint::open(dir / "a"), cc = Checkpoint::open(dir / "c");
  for (const std::string& name : ca.tensor_names()) {
    std::vector<uint16_t> x(ca.info(name).numel()), y(x.size());
    ca.read(name, x.data());
    cc.read(name, y.data());
    EXPECT_NE(x, y) << name;
  }
}

// Pinned bits: a change of generator, name hashing, rounding or file layout shows up here, and so
// does a platform that computes the values differently.
TEST(CheckpointWriterTest, BytesArePinned) {
  uint32_t bits;
  const float v0 = random_weight("model.layers.0.mlp.up_proj.weight", 0, 0);
  std::memcpy(&bits, &v0, 4);
  EXPECT_EQ(bits, 0xBD09B2DAu) << v0;  // -0.0336178
  const float v1 = random_weight("model.norm.weight", 0, 1);
  std::memcpy(&bits, &v1, 4);
  EXPECT_EQ(bits, 0x3F806333u) << v1;  // 1.0030273

  TempDir dir;
  write_random_checkpoint(testing::tiny_graph(), dir.str(), 0, DType::kBFloat16);
  EXPECT_EQ(fnv1a(read_bytes(dir / "model.safetensors")), 0x018525FAD977AC8Dull) << std::hex
      << fnv1a(read_bytes(dir / "model.safetensors"));
}

TEST(CheckpointWriterTest, FileLayoutIsTheReferenceWritersOne) {
  TempDir dir;
  const WrittenCheckpoint written = write_random_checkpoint(testing::tiny_graph(), dir.str(), 3, DType::kFloat16);
  EXPECT_EQ(written.files, (std::vector<std::string>{dir / "model.safetensors", dir / "config.json"}));
  EXPECT_EQ(written.tensors, 17);
  EXPECT_FALSE(fs::exists(dir / "model.safetensors.index.json"));

  const std::string bytes = read_bytes(dir / "model.safetensors");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  const std::string header_text = bytes.substr(8, n);
  EXPECT_EQ(header_text.rfind("{\"__metadata__\":{\"format\":\"pt\"},", 0), 0u) << header_text.substr(0, 60);
  const size_t close = header_text.find_last_of('}');
  EXPECT_EQ(header_text.find_first_not_of(' ', close + 1), std::string::npos);  // space padding only
  EXPECT_LT(header_text.size() - close - 1, 8u);

  // Tensors sorted by name, data contiguous in that order, filling the data area exactly.
  const nlohmann::ordered_json header = nlohmann::ordered_json::parse(header_text);
  std::string previous;
  uint64_t offset = 0;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") continue;
    EXPECT_LT(previous, name);
    previous = name;
    EXPECT_EQ(value["dtype"], "F16");
    EXPECT_EQ(value["data_offsets"][0].get<uint64_t>(), offset) << name;
    offset = value["data_offsets"][1].get<uint64_t>();
  }
  EXPECT_EQ(offset, written.tensor_bytes);
  EXPECT_EQ(8 + n + offset, bytes.size());
  EXPECT_EQ(written.tensor_bytes, 2u * (64 * 16 + 2 * (16 + 16 * 16 + 16 + 16 * 16 + 16 + 32 * 16 + 16 * 32) + 16 + 64 * 16));

  // config.json: the graph's config with the written dtype.
  const nlohmann::json config = nlohmann::json::parse(read_bytes(dir / "config.json"));
  EXPECT_EQ(config["torch_dtype"], "float16");
  EXPECT_EQ(config["hidden_size"], 16);

  // No temporary file is left behind.
  for (const auto& entry : fs::directory_iterator(dir.str())) EXPECT_NE(entry.path().extension(), ".tmp") << entry.path();
}

TEST(CheckpointWriterTest, ValuesFollowTheStreamInEveryDtype) {
  TempDir dir;
  const ModelGraph graph = testing::tiny_graph();
  write_random_checkpoint(graph, dir / "f32", 5, DType::kFloat32);
  write_random_checkpoint(graph, dir / "bf16", 5, DType::kBFloat16);
  write_random_checkpoint(graph, dir / "f16", 5, DType::kFloat16);
  Checkpoint f32 = Checkpoint::open(dir / "f32"), bf16 = Checkpoint::open(dir / "bf16"), f16 = Checkpoint::open(dir / "f16");
  for (const std::string& name : f32.tensor_names()) {
    const std::vector<float> values = read_floats(f32, name);
    std::vector<uint16_t> b(values.size()), h(values.size());
    bf16.read(name, b.data());
    f16.read(name, h.data());
    EXPECT_EQ(bf16.info(name).dtype, SafetensorsDType::kBF16);
    for (size_t i = 0; i < values.size(); ++i) {
      ASSERT_EQ(values[i], random_weight(name, 5, static_cast<int64_t>(i))) << name << " " << i;
      ASSERT_EQ(b[i], float_to_bfloat16_bits(values[i])) << name << " " << i;
      ASSERT_EQ(h[i], float_to_float16_bits(values[i])) << name << " " << i;
    }
  }
}

TEST(CheckpointWriterTest, ValueDistributionsByKindOfTensor) {
  TempDir dir;
  ModelGraph graph = testing::tiny_graph();
  Module big = testing::make_module("model.layers.9.mlp", ModuleKind::kMlp);
  big.params = {testing::make_param("big.weight", {256, 256}), testing::make_param("big.bias", {4096}),
                testing::make_param("vision.layer_norm1.weight", {4096})};
  graph.modules.push_back(big);
  write_random_checkpoint(graph, dir.str(), 9, DType::kFloat32);
  Checkpoint ckpt = Checkpoint::open(dir.str());
  auto stats = [&](const std::string& name, double center) {
    const std::vector<float> v = read_floats(ckpt, name);
    double mean = 0, var = 0, max_dev = 0;
    for (float x : v) mean += x;
    mean /= static_cast<double>(v.size());
    for (float x : v) {
      var += (x - mean) * (x - mean);
      max_dev = std::max(max_dev, std::abs(x - center));
    }
    return std::make_tuple(mean, std::sqrt(var / static_cast<double>(v.size())), max_dev);
  };
  auto [wm, ws, wmax] = stats("big.weight", 0.0);
  EXPECT_NEAR(wm, 0.0, 0.001);
  EXPECT_NEAR(ws, 0.02, 0.001);
  EXPECT_LE(wmax, 0.0347);
  auto [bm, bs, bmax] = stats("big.bias", 0.0);
  EXPECT_NEAR(bm, 0.0, 0.001);
  EXPECT_NEAR(bs, 0.01, 0.0005);
  auto [nm, ns, nmax] = stats("vision.layer_norm1.weight", 1.0);
  EXPECT_NEAR(nm, 1.0, 0.002);
  EXPECT_NEAR(ns, 0.02, 0.001);
  EXPECT_LE(nmax, 0.0347);
  auto [lm, ls, lmax] = stats("model.layers.0.post_attention_layernorm.weight", 1.0);
  EXPECT_NEAR(lm, 1.0, 0.02);
  EXPECT_LE(lmax, 0.0347);
}

TEST(CheckpointWriterTest, ShardedCheckpointHoldsTheSameValues) {
  TempDir dir;
  const ModelGraph graph = testing::tiny_graph();
  write_random_checkpoint(graph, dir / "single", 11, DType::kBFloat16);
  // At most 3000 bytes of tensors per file: several files.
  const WrittenCheckpoint written = write_random_checkpoint(graph, dir / "sharded", 11, DType::kBFloat16, 3000);
  ASSERT_GE(written.files.size(), 4u);
  const size_t shards = written.files.size() - 2;
  for (size_t i = 0; i < shards; ++i) {
    char expected[64];
    std::snprintf(expected, sizeof expected, "model-%05zu-of-%05zu.safetensors", i + 1, shards);
    EXPECT_EQ(fs::path(written.files[i]).filename(), expected);
    EXPECT_LE(data_bytes(written.files[i]), 3000u) << written.files[i];
  }
  EXPECT_EQ(fs::path(written.files[shards]).filename(), "model.safetensors.index.json");
  EXPECT_FALSE(fs::exists(dir / "sharded/model.safetensors"));

  const nlohmann::json index = nlohmann::json::parse(read_bytes(dir / "sharded/model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), written.tensor_bytes);
  EXPECT_EQ(index["weight_map"].size(), 17u);
  EXPECT_EQ(index["weight_map"]["model.embed_tokens.weight"], "model-00001-of-" + std::to_string(100000 + shards).substr(1) + ".safetensors");

  Checkpoint single = Checkpoint::open(dir / "single"), sharded = Checkpoint::open(dir / "sharded");
  EXPECT_EQ(sharded.files().size(), shards);
  ASSERT_EQ(single.tensor_names(), sharded.tensor_names());
  for (const std::string& name : single.tensor_names()) {
    std::vector<uint16_t> x(single.info(name).numel()), y(x.size());
    single.read(name, x.data());
    sharded.read(name, y.data());
    EXPECT_EQ(x, y) << name;
  }
}

TEST(CheckpointWriterTest, TiedTensorIsWrittenOnce) {
  TempDir dir;
  ModelGraph graph = testing::tiny_graph();
  graph.tied_lm_head_to = "model.embed_tokens.weight";
  graph.modules.back().params = {testing::make_param("model.norm.weight", {16})};
  const WrittenCheckpoint written = write_random_checkpoint(graph, dir.str(), 1, DType::kFloat32);
  Checkpoint ckpt = Checkpoint::open(dir.str());
  EXPECT_EQ(written.tensors, 16);
  EXPECT_TRUE(ckpt.contains("model.embed_tokens.weight"));
  EXPECT_FALSE(ckpt.contains("lm_head.weight"));
}

TEST(CheckpointWriterTest, RewritingRemovesTheStaleCheckpointOnly) {
  TempDir dir;
  const ModelGraph graph = testing::tiny_graph();
  testing::write_bytes(dir / "README.md", "keep me");
  write_random_checkpoint(graph, dir.str(), 1, DType::kFloat32, 2000);
  ASSERT_TRUE(fs::exists(dir / "model.safetensors.index.json"));
  ASSERT_GT(std::distance(fs::directory_iterator(dir.str()), fs::directory_iterator()), 4);
  write_random_checkpoint(graph, dir.str(), 2, DType::kFloat32);
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir.str())) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"README.md", "config.json", "model.safetensors"}));
  EXPECT_EQ(Checkpoint::open(dir.str()).files().size(), 1u);
}

TEST(CheckpointWriterTest, UnwritableDestinationIsAnIoError) {
  TempDir dir;
  testing::write_bytes(dir / "file", "x");
  testing::expect_weights_error([&] { write_random_checkpoint(testing::tiny_graph(), dir / "file/sub", 1, DType::kFloat32); },
                                WeightsError::Code::kIo, {"cannot create output directory", "file/sub"});
  ModelGraph no_config = testing::tiny_graph();
  no_config.config = nullptr;
  testing::expect_weights_error([&] { write_random_checkpoint(no_config, dir / "out", 1, DType::kFloat32); },
                                WeightsError::Code::kInvalid, {"no config object"});
  ModelGraph negative = testing::tiny_graph();
  negative.modules[0].params[0].shape = {-1, 16};
  testing::expect_weights_error([&] { write_random_checkpoint(negative, dir / "out", 1, DType::kFloat32); },
                                WeightsError::Code::kInvalid, {"model.embed_tokens.weight", "[-1, 16]", "negative"});
}

TEST(CheckpointWriterTest, ParsesByteSizes) {
  EXPECT_EQ(parse_byte_size("2147483648"), 2147483648ull);
  EXPECT_EQ(parse_byte_size("2GiB"), 2ull << 30);
  EXPECT_EQ(parse_byte_size("5GB"), 5000000000ull);
  EXPECT_EQ(parse_byte_size("500mb"), 500000000ull);
  EXPECT_EQ(parse_byte_size("10KiB"), 10240ull);
  EXPECT_EQ(parse_byte_size("7B"), 7ull);
  EXPECT_EQ(parse_byte_size("0"), std::nullopt);
  EXPECT_EQ(parse_byte_size("-5"), std::nullopt);
  EXPECT_EQ(parse_byte_size("1.5GB"), std::nullopt);
  EXPECT_EQ(parse_byte_size("5 GB"), std::nullopt);
  EXPECT_EQ(parse_byte_size("GB"), std::nullopt);
  EXPECT_EQ(parse_byte_size("99999999999999999999"), std::nullopt);
  EXPECT_EQ(parse_byte_size("20000000TiB"), std::nullopt);
}

}  // namespace
}  // namespace shardplan
