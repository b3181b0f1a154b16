// The executor's Llama / Mistral / Qwen2 forward against Hugging Face transformers: the logits,
// greedy tokens and Llama-3 RoPE frequencies that scripts/hf_forward_reference.py recorded in
// tests/executor/data/hf_forward_reference.json (transformers 5.17, torch 2.11, CPU, float32,
// eager attention) for the checkpoints `executor make-checkpoint --seed 7` writes. Regenerate
// with that script where transformers is installed.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "executor/runtime/engine.h"
#include "executor/runtime/rank_weights.h"
#include "executor/runtime/workload.h"
#include "executor/weights/safetensors.h"
#include "models/graph/registry.h"
#include "models/llama/llama_forward.h"
#include "tests/executor/runtime_test_util.h"

namespace shardplan {
namespace {

using testing::load_plan;
using testing::SpecText;
using testing::write_spec;

const nlohmann::json& reference() {
  static const nlohmann::json j = [] {
    nlohmann::json r;
    std::ifstream(std::string(SHARDPLAN_SOURCE_DIR) + "/tests/executor/data/hf_forward_reference.json") >> r;
    return r;
  }();
  return j;
}

class HfReferenceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HfReferenceTest, LogitsAndTokensMatchTransformers) {
  at::set_num_threads(1);
  const std::string model = GetParam();
  const nlohmann::json& ref = reference()["models"][model];
  const nlohmann::json& all = reference();
  SpecText s;
  s.config = model + ".json";
  s.mesh = "one: 1";
  s.modules.clear();
  s.batch = all["batch"];
  s.prompt_tokens = all["prompt_tokens"];
  s.new_tokens = all["new_tokens"];
  const std::unique_ptr<Plan> plan = load_plan(write_spec("hf_" + model, s));
  const Checkpoint ckpt = Checkpoint::open(*plan->spec().checkpoint_path);
  Engine engine(*plan, 0, nullptr, load_rank_shards(*plan, 0, ckpt, at::kFloat, at::kCPU),
                EngineOptions{at::kCPU, at::kFloat, /*keep_logits=*/true});
  const EngineInputs inputs = make_engine_inputs(*plan, all["seed"].get<uint64_t>());
  const at::Tensor& prompts = inputs.prompts;
  for (int64_t r = 0; r < s.batch; ++r) {
    for (int64_t t = 0; t < s.prompt_tokens; ++t) {
      ASSERT_EQ(prompts[r][t].item<int64_t>(), ref["prompts"][r][t].get<int64_t>()) << "prompt " << r << ", " << t;
    }
  }
  const Generation g = engine.generate(inputs);
  for (int64_t step = 0; step < s.new_tokens; ++step) {
    for (int64_t r = 0; r < s.batch; ++r) {
      EXPECT_EQ(g.tokens[r][step].item<int64_t>(), ref["tokens"][step][r].get<int64_t>()) << "step " << step << ", request " << r;
      EXPECT_NEAR(g.logits[step][r].max().item<double>(), ref["logits_max"][step][r].get<double>(), 1e-4);
      const nlohmann::json& head = ref["logits_head"][step][r];
      for (size_t v = 0; v < head.size(); ++v) {
        EXPECT_NEAR(g.logits[step][r][v].item<double>(), head[v].get<double>(), 1e-4)
            << "step " << step << ", request " << r << ", vocabulary " << v;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Families, HfReferenceTest, ::testing::Values("tiny-llama", "tiny-mistral", "tiny-qwen2"));

void expect_inv_freq(const LlamaConfig& config, const nlohmann::json& want) {
  const at::Tensor inv = rope_inv_freq(config.rope, config.head_dim, at::kCPU);
  ASSERT_EQ(inv.numel(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_FLOAT_EQ(inv[static_cast<int64_t>(i)].item<float>(), want[i].get<float>()) << "frequency " << i;
  }
}

TEST(HfRopeTest, Llama3FrequenciesMatchTransformers) {
  expect_inv_freq(load_model_graph(testing::kConfigDir + "tiny-llama.json").typed_config<LlamaConfig>(),
                  reference()["models"]["tiny-llama"]["llama3_inv_freq"]);
  // Llama 3.1 8B: llama-3-8b.json with the 3.1 rope_scaling (factor 8, original 8192 positions).
  nlohmann::json config;
  std::ifstream(testing::kConfigDir + "llama-3-8b.json") >> config;
  config["rope_scaling"] = {{"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                            {"original_max_position_embeddings", 8192}, {"rope_type", "llama3"}};
  config["max_position_embeddings"] = 131072;
  expect_inv_freq(build_model_graph(config).typed_config<LlamaConfig>(),
                  reference()["models"]["llama-3.1-8b"]["llama3_inv_freq"]);
}

}  // namespace
}  // namespace shardplan
