// Helpers for the weights tests: a scratch directory per test, raw safetensors files written byte
// by byte (so broken ones can be made), and a small hand-made model graph.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "executor/weights/weights_error.h"
#include "models/graph/model_graph.h"

namespace shardplan::testing {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, named after the running test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("shardplan_weights_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline std::string u64_le(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return out;
}

// 8-byte length + header text as given (no padding) + data.
inline void write_safetensors(const std::string& path, const std::string& header, const std::string& data) {
  write_bytes(path, u64_le(header.size()) + header + data);
}

inline std::string float_bytes(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

// Expects `fn` to throw WeightsError with `code` and a message containing every one of `parts`.
template <typename Fn>
void expect_weights_error(Fn&& fn, WeightsError::Code code, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no WeightsError thrown";
  } catch (const WeightsError& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    for (const std::string& part : parts) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << "'" << part << "' not in: " << e.what();
    }
  }
}

inline Param make_param(const std::string& name, std::vector<int64_t> shape) {
  Param p;
  p.name = name;
  p.shape = std::move(shape);
  return p;
}

inline Module make_module(const std::string& path, ModuleKind kind, int layer = -1) {
  Module m;
  m.path = path;
  m.kind = kind;
  m.layer = layer;
  return m;
}

// A two-layer llama-like graph, built by hand: hidden 16, vocab 64, with a bias and norms.
inline ModelGraph tiny_graph() {
  ModelGraph g;
  g.family = "llama";
  g.model_type = "llama";
  g.hidden = 16;
  g.vocab = 64;
  g.config_dtype = DType::kFloat32;
  g.config = {{"model_type", "llama"}, {"hidden_size", 16}, {"vocab_size", 64}, {"torch_dtype", "float32"}};
  Module embed = make_module("model.embed_tokens", ModuleKind::kEmbedding);
  embed.params = {make_param("model.embed_tokens.weight", {64, 16})};
  g.modules.push_back(embed);
  for (int layer = 0; layer < 2; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer);
    Module attn = make_module(p + ".self_attn", ModuleKind::kAttention, layer);
    attn.params = {make_param(p + ".input_layernorm.weight", {16}), make_param(p + ".self_attn.q_proj.weight", {16, 16}),
                   make_param(p + ".self_attn.q_proj.bias", {16}), make_param(p + ".self_attn.o_proj.weight", {16, 16})};
    Module mlp = make_module(p + ".mlp", ModuleKind::kMlp, layer);
    mlp.params = {make_param(p + ".post_attention_layernorm.weight", {16}), make_param(p + ".mlp.up_proj.weight", {32, 16}),
                  make_param(p + ".mlp.down_proj.weight", {16, 32})};
    g.modules.push_back(attn);
    g.modules.push_back(mlp);
  }
  Module head = make_module("lm_head", ModuleKind::kLmHead);
  head.params = {make_param("model.norm.weight", {16}), make_param("lm_head.weight", {64, 16})};
  g.modules.push_back(head);
  return g;
}

}  // namespace shardplan::testing
