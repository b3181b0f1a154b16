// The spelling of kinds, dtypes and streams, and num_parameters' counting rule.
#include "models/graph/model_graph.h"

#include <gtest/gtest.h>

namespace shardplan {
namespace {

TEST(ModuleKindTest, SpellingsAreTheSpecKinds) {
  std::vector<std::string> names;
  for (ModuleKind kind : all_module_kinds()) names.push_back(to_string(kind));
  EXPECT_EQ(names, (std::vector<std::string>{"embedding", "attention", "cross_attention", "mlp",
                                             "moe", "encoder", "projector", "lm_head"}));
}

TEST(ModuleKindTest, ParseRoundTripsAndRejectsOtherSpellings) {
  for (ModuleKind kind : all_module_kinds()) {
    EXPECT_EQ(parse_module_kind(to_string(kind)), kind) << to_string(kind);
  }
  EXPECT_EQ(parse_module_kind("Attention"), std::nullopt);
  EXPECT_EQ(parse_module_kind("mlp "), std::nullopt);
  EXPECT_EQ(parse_module_kind("cross-attention"), std::nullopt);
  EXPECT_EQ(parse_module_kind(""), std::nullopt);
}

TEST(DTypeTest, SpellingsBytesAndParse) {
  EXPECT_STREQ(to_string(DType::kFloat32), "float32");
  EXPECT_STREQ(to_string(DType::kBFloat16), "bfloat16");
  EXPECT_STREQ(to_string(DType::kFloat16), "float16");
  EXPECT_EQ(dtype_bytes(DType::kFloat32), 4);
  EXPECT_EQ(dtype_bytes(DType::kBFloat16), 2);
  EXPECT_EQ(dtype_bytes(DType::kFloat16), 2);
  EXPECT_EQ(parse_dtype("bfloat16"), DType::kBFloat16);
  EXPECT_EQ(parse_dtype("float16"), DType::kFloat16);
  EXPECT_EQ(parse_dtype("float32"), DType::kFloat32);
  EXPECT_EQ(parse_dtype("bf16"), std::nullopt);
  EXPECT_EQ(parse_dtype("float64"), std::nullopt);
}

TEST(StreamTest, Spellings) {
  EXPECT_STREQ(to_string(Stream::kText), "text");
  EXPECT_STREQ(to_string(Stream::kImage), "image");
  EXPECT_STREQ(to_string(Stream::kAudio), "audio");
}

TEST(ParamTest, NumelIsTheProductOfTheShape) {
  Param param;
  param.shape = {1024, 3, 14, 14};
  EXPECT_EQ(param.numel(), 602112);
  param.shape = {4096};
  EXPECT_EQ(param.numel(), 4096);
}

TEST(ModelGraphTest, NumParametersCountsEachNameOnce) {
  // An encoder lists a tensor that its child lists too; a second module repeating a name (as a
  // tied weight would) must not count twice either.
  Param a;
  a.name = "a.weight";
  a.shape = {10, 10};
  Param b;
  b.name = "b.weight";
  b.shape = {7};
  Module first;
  first.params = {a, b};
  Module child;
  child.params = {a};
  first.children = {child};
  Module second;
  second.params = {a};
  ModelGraph graph;
  graph.modules = {first, second};
  EXPECT_EQ(graph.num_parameters(), 107);
}

}  // namespace
}  // namespace shardplan
