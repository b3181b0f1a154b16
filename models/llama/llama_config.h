// The typed config of the Llama family (model_type llama, mistral, qwen2; mixtral, llava and
// qwen2_moe build on it): read once from config.json with each model_type's transformers
// defaults, shared by the graph builder and the forward. No libtorch here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "models/graph/config_reader.h"
#include "models/graph/model_graph.h"
#include "models/graph/rope_parameters.h"

namespace shardplan {

// What a model_type changes in a Llama-style decoder: its config class's defaults and which
// bias and window fields it has.
struct LlamaVariant {
  int64_t vocab, hidden, intermediate, layers, heads;
  std::optional<int64_t> kv_heads;  // nullopt: num_attention_heads
  int64_t max_positions;
  double rms_norm_eps;
  double rope_theta;
  enum class Bias { kFlags, kQkvAlways, kNone } bias;  // attention_bias/mlp_bias; qwen2's q/k/v; none
  enum class Window { kNone, kSlidingWindow, kQwenUseSlidingWindow } window;
};

// The variant of a llama-family model_type (llama, mistral, qwen2, mixtral).
LlamaVariant llama_variant(const std::string& model_type);

struct LlamaConfig : FamilyConfig {
  std::string model_type;
  int64_t vocab = 0;
  int64_t hidden = 0;
  int64_t intermediate = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_positions = 0;
  bool qkv_bias = false;   // q/k/v_proj.bias (qwen2 always; llama with attention_bias)
  bool o_bias = false;     // o_proj.bias (llama with attention_bias)
  bool mlp_bias = false;   // gate/up/down_proj.bias (llama with mlp_bias)
  bool tie_word_embeddings = false;
  std::string hidden_act = "silu";
  double rms_norm_eps = 1e-6;
  RopeParameters rope;
  std::optional<int64_t> sliding_window;  // keys within the last N positions only (mistral, mixtral)
  // Why the executor's forward cannot run this config (planning works), one sentence each: an
  // activation, a RoPE type or a window it does not implement. Empty: it can.
  std::vector<std::string> executor_unsupported;
};

// Reads the decoder of `reader`'s object with `variant`'s defaults and writes the defaults it
// applied into the object. Checks (ConfigError):
//   - every size is an integer >= 1;
//   - hidden_size is divisible by num_attention_heads when head_dim is not given;
//   - num_attention_heads is divisible by num_key_value_heads;
//   - a llama3 RoPE has its factors, and they differ.
void read_llama_config(ConfigReader& reader, const LlamaVariant& variant, LlamaConfig& config);

// ConfigError "<model_type>: <the first executor_unsupported sentence>" unless it is empty.
void require_executor_support(const LlamaConfig& config);

}  // namespace shardplan
