// model_type dispatch, file loading and the config dtype.
#include "models/graph/registry.h"

#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/models/graph_test_util.h"

namespace shardplan {
namespace {

using testing::expect_config_error;
using testing::load_config;

TEST(RegistryTest, SupportedModelTypes) {
  EXPECT_EQ(supported_model_types(),
            (std::vector<std::string>{"llama", "mistral", "qwen2", "mixtral", "qwen2_moe", "llava", "whisper"}));
}

TEST(RegistryTest, UnknownModelTypeListsTheSupportedOnes) {
  expect_config_error({{"model_type", "gpt2"}, {"n_embd", 768}},
                      {"'gpt2'", "llama", "mistral", "qwen2", "mixtral", "qwen2_moe", "llava", "whisper"});
}

TEST(RegistryTest, MissingModelTypeListsTheSupportedOnes) {
  expect_config_error({{"hidden_size", 4096}}, {"model_type", "llama", "whisper"});
  expect_config_error({{"model_type", 7}}, {"model_type", "llama"});
}

TEST(RegistryTest, NotAnObject) {
  expect_config_error(nlohmann::json::array({1, 2}), {"JSON object"});
}

TEST(RegistryTest, EveryConfigBuildsWithItsFamily) {
  struct Case {
    const char* file;
    const char* family;
    const char* model_type;
  };
  for (const Case& c : {Case{"llama-3-8b.json", "llama", "llama"},
                        Case{"llama-3-70b.json", "llama", "llama"},
                        Case{"tiny-llama.json", "llama", "llama"},
                        Case{"tiny-mistral.json", "llama", "mistral"},
                        Case{"tiny-qwen2.json", "llama", "qwen2"},
                        Case{"mixtral-8x7b.json", "mixtral", "mixtral"},
                        Case{"tiny-mixtral.json", "mixtral", "mixtral"},
                        Case{"qwen1.5-moe-a2.7b.json", "qwen2_moe", "qwen2_moe"},
                        Case{"tiny-qwen2-moe.json", "qwen2_moe", "qwen2_moe"},
                        Case{"llava-1.5-7b.json", "llava", "llava"},
                        Case{"tiny-llava.json", "llava", "llava"},
                        Case{"whisper-large-v3.json", "whisper", "whisper"},
                        Case{"tiny-whisper.json", "whisper", "whisper"}}) {
    ModelGraph graph = load_config(c.file);
    EXPECT_EQ(graph.family, c.family) << c.file;
    EXPECT_EQ(graph.model_type, c.model_type) << c.file;
    EXPECT_FALSE(graph.modules.empty()) << c.file;
  }
}

TEST(RegistryTest, ConfigDtype) {
  EXPECT_EQ(load_config("llama-3-8b.json").config_dtype, DType::kBFloat16);
  EXPECT_EQ(load_config("llava-1.5-7b.json").config_dtype, DType::kFloat16);
  EXPECT_EQ(load_config("whisper-large-v3.json").config_dtype, DType::kFloat16);
  EXPECT_EQ(load_config("tiny-llama.json").config_dtype, DType::kFloat32);
  // transformers 5 writes "dtype"; no dtype at all loads as float32.
  EXPECT_EQ(build_model_graph({{"model_type", "llama"}, {"dtype", "bfloat16"}}).config_dtype,
            DType::kBFloat16);
  EXPECT_EQ(build_model_graph({{"model_type", "llama"}}).config_dtype, DType::kFloat32);
  // llava with the dtype only inside text_config.
  EXPECT_EQ(build_model_graph({{"model_type", "llava"},
                               {"text_config", {{"torch_dtype", "bfloat16"}}}})
                .config_dtype,
            DType::kBFloat16);
  expect_config_error({{"model_type", "llama"}, {"torch_dtype", "float64"}},
                      {"torch_dtype", "float64", "bfloat16"});
}

TEST(RegistryTest, LoadMissingFileNamesThePath) {
  const std::string path = "/nonexistent/dir/config.json";
  try {
    load_model_graph(path);
    FAIL() << "no ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(RegistryTest, LoadPrefixesErrorsWithThePath) {
  const std::string path = ::testing::TempDir() + "/shardplan_registry_test_config.json";
  {
    std::ofstream file(path);
    file << "{\"model_type\": \"llama\", \"hidden_size\": ";  // cut short
  }
  try {
    load_model_graph(path);
    FAIL() << "no ConfigError for broken JSON";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": not valid JSON"), std::string::npos)
        << e.what();
  }
  {
    std::ofstream file(path);
    file << R"({"model_type": "llama", "hidden_size": 4100, "num_attention_heads": 32})";
  }
  try {
    load_model_graph(path);
    FAIL() << "no ConfigError for hidden_size 4100";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": hidden_size 4100 is not divisible by "
                                                "num_attention_heads 32"),
              std::string::npos)
        << e.what();
  }
  std::remove(path.c_str());
}

}  // namespace
}  // namespace shardplan
