// The Llama-family forward's pieces against hand-computed values: RoPE frequencies (default and
// Llama-3 scaling, as transformers' _compute_llama3_parameters), RMSNorm, the rotation, the
// masks, the vocabulary-split embedding, and the q-head -> KV-head map under KV replication.
#include <ATen/ATen.h>

#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "models/graph/model_graph.h"
#include "models/graph/registry.h"
#include "models/layers/linear.h"
#include "models/layers/norm.h"
#include "models/layers/rope.h"
#include "models/llama/llama_forward.h"

namespace shardplan {
namespace {

const std::string kConfigs = std::string(SHARDPLAN_SOURCE_DIR) + "/models/configs/";

// The typed config models/llama reads from `config`.
LlamaConfig typed(const nlohmann::json& config) { return build_model_graph(config).typed_config<LlamaConfig>(); }

// _compute_llama3_parameters in double precision, written from its definition:
// wavelen < orig / high: as is; wavelen > orig / low: / factor; in between, interpolated.
std::vector<double> llama3_inv_freq(double theta, int64_t dim, double factor, double low, double high, double orig) {
  std::vector<double> out;
  for (int64_t i = 0; i < dim; i += 2) {
    const double inv = 1.0 / std::pow(theta, static_cast<double>(i) / static_cast<double>(dim));
    const double wavelen = 2 * M_PI / inv;
    if (wavelen < orig / high) {
      out.push_back(inv);
    } else if (wavelen > orig / low) {
      out.push_back(inv / factor);
    } else {
      const double smooth = (orig / wavelen - low) / (high - low);
      out.push_back((1 - smooth) * inv / factor + smooth * inv);
    }
  }
  return out;
}

TEST(LlamaRopeTest, Llama3ScalingMatchesItsDefinitionInEveryRegime) {
  // tiny-llama: head_dim 32, theta 500000, factor 8, low 1, high 4, original 256 positions:
  // frequencies 0-2 stay (wavelengths 6.3, 14.3, 32.4 < 64), 3 and 4 are interpolated (73.6 and
  // 167 in [64, 256]), 5-15 are divided by 8 (380 and more > 256).
  const LlamaConfig config = load_model_graph(kConfigs + "tiny-llama.json").typed_config<LlamaConfig>();
  ASSERT_EQ(config.rope.type, "llama3");
  EXPECT_EQ(config.rope.original_max_positions, 256);
  const at::Tensor inv = rope_inv_freq(config.rope, config.head_dim, at::kCPU);
  ASSERT_EQ(inv.sizes(), (std::vector<int64_t>{16}));
  const std::vector<double> want = llama3_inv_freq(500000.0, 32, 8.0, 1.0, 4.0, 256.0);
  for (int64_t i = 0; i < 16; ++i) {
    EXPECT_NEAR(inv[i].item<double>(), want[i], 1e-6 * want[i]) << "frequency " << i;
  }
  // The three regimes, spelled out.
  EXPECT_NEAR(inv[0].item<double>(), 1.0, 1e-7);
  EXPECT_NEAR(inv[2].item<double>(), std::pow(500000.0, -4.0 / 32), 1e-7);
  for (int i : {3, 4}) {
    const double f = std::pow(500000.0, -2.0 * i / 32), smooth = (256.0 / (2 * M_PI / f) - 1.0) / 3.0;
    EXPECT_GT(smooth, 0.0);
    EXPECT_LT(smooth, 1.0);
    EXPECT_NEAR(inv[i].item<double>(), (1 - smooth) * f / 8 + smooth * f, 1e-6 * f) << i;
  }
  EXPECT_NEAR(inv[5].item<double>(), std::pow(500000.0, -10.0 / 32) / 8, 1e-9);
  EXPECT_NEAR(inv[15].item<double>(), std::pow(500000.0, -30.0 / 32) / 8, 1e-12);
}

TEST(LlamaRopeTest, DefaultAndLinearAndUnsupportedTypes) {
  nlohmann::json config = load_model_graph(kConfigs + "tiny-mistral.json").config;  // theta 10000, head_dim 32
  LlamaConfig c = typed(config);
  EXPECT_EQ(c.rope.type, "default");
  at::Tensor inv = rope_inv_freq(c.rope, c.head_dim, at::kCPU);
  EXPECT_NEAR(inv[1].item<double>(), std::pow(10000.0, -2.0 / 32), 1e-7);

  config["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  c = typed(config);
  EXPECT_EQ(c.rope.type, "linear");
  inv = rope_inv_freq(c.rope, c.head_dim, at::kCPU);
  EXPECT_NEAR(inv[1].item<double>(), std::pow(10000.0, -2.0 / 32) / 4, 1e-7);

  config["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  try {
    require_executor_support(typed(config));  // planning reads it; the executor refuses it
    FAIL() << "yarn accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'yarn' is not supported by the executor yet"), std::string::npos) << e.what();
  }
}

TEST(LlamaRopeTest, TableHoldsCosAndSinOfPositionTimesFrequencyTwice) {
  const LlamaConfig config = load_model_graph(kConfigs + "tiny-mistral.json").typed_config<LlamaConfig>();
  const RopeTable table = rope_table(config.rope, config.head_dim, 8, at::kCPU);
  ASSERT_EQ(table.cos.sizes(), (std::vector<int64_t>{8, 32}));
  const double f3 = std::pow(10000.0, -6.0 / 32);
  EXPECT_NEAR(table.cos[5][3].item<double>(), std::cos(5 * f3), 1e-6);
  EXPECT_NEAR(table.sin[5][3 + 16].item<double>(), std::sin(5 * f3), 1e-6);
  EXPECT_NEAR(table.cos[0][7].item<double>(), 1.0, 1e-7);
}

TEST(LlamaForwardTest, RmsNormByHand) {
  // mean(x^2) = (1 + 4 + 9 + 16) / 4 = 7.5
  const at::Tensor x = at::tensor({1.0f, 2.0f, 3.0f, 4.0f});
  const at::Tensor w = at::tensor({1.0f, 0.5f, 2.0f, 1.0f});
  const at::Tensor y = rms_norm(x, w, 1e-5);
  const double r = 1.0 / std::sqrt(7.5 + 1e-5);
  EXPECT_NEAR(y[0].item<double>(), 1 * r, 1e-6);
  EXPECT_NEAR(y[1].item<double>(), 0.5 * 2 * r, 1e-6);
  EXPECT_NEAR(y[2].item<double>(), 2 * 3 * r, 1e-6);
  EXPECT_NEAR(y[3].item<double>(), 4 * r, 1e-6);
  EXPECT_EQ(rms_norm(x.to(at::kBFloat16), w.to(at::kBFloat16), 1e-5).scalar_type(), at::kBFloat16);
}

TEST(LlamaForwardTest, RopeRotatesEachPairOfHalves) {
  // head_dim 4: pairs (x0, x2) and (x1, x3) rotate by angles a and b.
  const at::Tensor x = at::tensor({1.0f, 2.0f, 3.0f, 4.0f}).view({1, 1, 1, 4});
  const double a = 0.3, b = 1.1;
  const at::Tensor cos = at::tensor({std::cos(a), std::cos(b), std::cos(a), std::cos(b)}).view({1, 4});
  const at::Tensor sin = at::tensor({std::sin(a), std::sin(b), std::sin(a), std::sin(b)}).view({1, 4});
  const at::Tensor y = apply_rope(x, cos, sin).flatten();
  EXPECT_NEAR(y[0].item<double>(), 1 * std::cos(a) - 3 * std::sin(a), 1e-6);
  EXPECT_NEAR(y[1].item<double>(), 2 * std::cos(b) - 4 * std::sin(b), 1e-6);
  EXPECT_NEAR(y[2].item<double>(), 3 * std::cos(a) + 1 * std::sin(a), 1e-6);
  EXPECT_NEAR(y[3].item<double>(), 4 * std::cos(b) + 2 * std::sin(b), 1e-6);
}

TEST(LlamaForwardTest, StepPositionsAreCausalAndWindowed) {
  // Decode at position 5 over a cache of 8: keys 0..5.
  StepPositions step = llama_step_positions(5, 1, 8, std::nullopt, at::kCPU);
  EXPECT_EQ(step.positions.item<int64_t>(), 5);
  EXPECT_TRUE(step.allowed.equal(at::tensor({1, 1, 1, 1, 1, 1, 0, 0}).to(at::kBool).view({1, 8})));
  // Prefill of 4 with a window of 2: query t reads keys t-1 and t.
  step = llama_step_positions(0, 4, 4, 2, at::kCPU);
  const at::Tensor want = at::tensor({1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1}).to(at::kBool).view({4, 4});
  EXPECT_TRUE(step.allowed.equal(want)) << step.allowed;
}

TEST(LlamaForwardTest, VocabularySplitEmbeddingSumsToTheWholeLookup) {
  LlamaConfig config;
  config.vocab = 8;
  const at::Tensor table = at::arange(8 * 3, at::kFloat).view({8, 3});
  const at::Tensor ids = at::tensor({7, 0, 3, 4}, at::TensorOptions().dtype(at::kLong)).view({2, 2});
  const at::Tensor whole = llama_embedding_forward(config, {table, 0}, ids);
  const at::Tensor low = llama_embedding_forward(config, {table.narrow(0, 0, 4), 0}, ids);
  const at::Tensor high = llama_embedding_forward(config, {table.narrow(0, 4, 4), 4}, ids);
  EXPECT_TRUE(whole.equal(table.index_select(0, ids.flatten()).view({2, 2, 3})));
  EXPECT_TRUE((low + high).equal(whole));
  EXPECT_EQ(low[0][0].abs().sum().item<float>(), 0.0f);   // id 7 is not in rows [0, 4)
  EXPECT_EQ(high[0][1].abs().sum().item<float>(), 0.0f);  // id 0 is not in rows [4, 8)
}

TEST(LlamaForwardTest, QHeadsReadTheirKvHeadUnderReplication) {
  // tiny-llama (8 heads, 2 KV heads, head_dim 32) under tensor over 4: rank 2 holds q heads
  // [4, 6) and KV head 1 (replicated on ranks 2 and 3); both q heads read local KV head 0.
  LlamaConfig config;
  config.heads = 8;
  config.kv_heads = 2;
  config.head_dim = 32;
  LlamaAttentionWeights w;
  w.q.weight = at::zeros({64, 256});
  w.k.weight = at::zeros({32, 256});
  w.q_head_begin = 4;
  w.kv_head_begin = 1;
  const KvCache cache = llama_make_kv_cache(config, w, 3, 10);
  EXPECT_EQ(cache.k.sizes(), (std::vector<int64_t>{3, 1, 10, 32}));
  EXPECT_TRUE(cache.head_map.equal(at::tensor({0, 0}, at::TensorOptions().dtype(at::kLong))));
  // tensor over 2: rank 1 holds q heads [4, 8) and KV head 1 only: local map [0, 0, 0, 0].
  w.q.weight = at::zeros({128, 256});
  w.q_head_begin = 4;
  EXPECT_TRUE(llama_make_kv_cache(config, w, 1, 4).head_map.equal(at::zeros({4}, at::kLong)));
  // A rank holding q heads of KV head 0 with KV head 1 is a bug, and said so.
  w.q_head_begin = 0;
  EXPECT_THROW(llama_make_kv_cache(config, w, 1, 4), std::logic_error);
}

TEST(LlamaForwardTest, QwenSlidingWindowIsRefusedNotIgnored) {
  nlohmann::json config = load_model_graph(kConfigs + "tiny-qwen2.json").config;
  EXPECT_NO_THROW(require_executor_support(typed(config)));
  config["use_sliding_window"] = true;
  EXPECT_THROW(require_executor_support(typed(config)), ConfigError);
  config["use_sliding_window"] = false;
  config["hidden_act"] = "gelu";
  EXPECT_THROW(require_executor_support(typed(config)), ConfigError);
}

// Fusing q/k/v (or gate/up) leaves the rank holding each weight once: the loaded tensors (here a
// map as the loaded shards are) become views of the fused one, their own copies freed at once.
TEST(LlamaForwardTest, FusedProjectionsTakeOverTheLoadedTensors) {
  TensorShards loaded;
  loaded["q"] = {at::arange(12, at::kFloat).view({3, 4}), {0, 0}};
  loaded["k"] = {at::arange(8, at::kFloat).view({2, 4}) + 100, {0, 0}};
  ColumnParallelLinear q{loaded["q"].tensor, {}, 0}, k{loaded["k"].tensor, {}, 0};
  const ColumnParallelLinear fused = fuse_columns({&q, &k});
  ASSERT_EQ(fused.weight.size(0), 5);
  const void* base = fused.weight.storage().data();
  EXPECT_EQ(loaded["q"].tensor.storage().data(), base);
  EXPECT_EQ(loaded["k"].tensor.storage().data(), base);
  EXPECT_TRUE(at::equal(loaded["k"].tensor, at::arange(8, at::kFloat).view({2, 4}) + 100));
  EXPECT_TRUE(at::equal(q.weight, fused.weight.narrow(0, 0, 3)));
  EXPECT_EQ(k.weight.data_ptr(), fused.weight.narrow(0, 3, 2).data_ptr());
}

}  // namespace
}  // namespace shardplan
