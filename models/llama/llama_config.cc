// The Llama family's typed config (see llama_config.h).
#include "models/llama/llama_config.h"

#include <cmath>

#include "models/graph/module_builder.h"

namespace shardplan {
namespace {

const nlohmann::json* object_at(const nlohmann::json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end() || !it->is_object()) return nullptr;
  return &*it;
}

double number_or(const nlohmann::json& object, const char* key, double fallback) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_number()) {
    throw ConfigError(std::string(key) + " must be a number, got " + describe_json(*it));
  }
  return it->get<double>();
}

// transformers 5 keeps everything in `rope_parameters`; older configs have `rope_theta` and
// `rope_scaling` (whose type key was once `type`).
RopeParameters read_rope(const nlohmann::json& config, int64_t max_positions, double default_theta) {
  RopeParameters rope;
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    // NOTE: a value transformers would not read as parameters is refused, not ignored.
    auto it = config.find(key);
    if (it != config.end() && !it->is_null() && !it->is_object()) {
      throw ConfigError(std::string(key) + " must be an object (or null), got " + describe_json(*it));
    }
  }
  const nlohmann::json* params = object_at(config, "rope_parameters");
  if (!params) params = object_at(config, "rope_scaling");
  rope.theta = number_or(config, "rope_theta", default_theta);
  rope.original_max_positions = max_positions;
  const auto positive_theta = [&] {
    if (!(rope.theta > 0) || !std::isfinite(rope.theta)) {
      throw ConfigError("rope_theta must be a positive number, got " + describe_json(rope.theta) +
                        " (the rotation's frequencies would be NaN)");
    }
  };
  if (!params) {
    positive_theta();
    return rope;
  }
  rope.theta = number_or(*params, "rope_theta", rope.theta);
  positive_theta();
  for (const char* key : {"rope_type", "type"}) {
    auto it = params->find(key);
    if (it != params->end() && it->is_string()) {
      rope.type = it->get<std::string>();
      break;
    }
  }
  rope.factor = number_or(*params, "factor", 1.0);
  rope.low_freq_factor = number_or(*params, "low_freq_factor", 1.0);
  rope.high_freq_factor = number_or(*params, "high_freq_factor", 4.0);
  rope.original_max_positions = static_cast<int64_t>(
      number_or(*params, "original_max_position_embeddings", static_cast<double>(max_positions)));
  if (rope.type == "llama3") {
    if (!params->contains("factor") || !params->contains("low_freq_factor") ||
        !params->contains("high_freq_factor")) {
      throw ConfigError("rope type 'llama3' needs factor, low_freq_factor and high_freq_factor");
    }
    if (rope.high_freq_factor == rope.low_freq_factor) {
      throw ConfigError("rope type 'llama3': high_freq_factor equals low_freq_factor");
    }
  }
  return rope;
}

}  // namespace

LlamaVariant llama_variant(const std::string& model_type) {
  // NOTE: checked against transformers' configuration_{llama,mistral,qwen2,mixtral}.py;
  // MistralConfig and MixtralConfig default to 8 KV heads and max_position_embeddings 4096 * 32.
  // Only LlamaConfig has attention_bias / mlp_bias; transformers' Mistral and Mixtral attention
  // has no bias whatever the config says, Qwen2's always has q/k/v biases.
  using B = LlamaVariant::Bias;
  using W = LlamaVariant::Window;
  if (model_type == "mistral") {
    return {32000, 4096, 14336, 32, 32, 8, 4096 * 32, 1e-6, 10000.0, B::kNone, W::kSlidingWindow};
  }
  if (model_type == "qwen2") {
    return {151936, 4096, 22016, 32, 32, 32, 32768, 1e-6, 10000.0, B::kQkvAlways, W::kQwenUseSlidingWindow};
  }
  if (model_type == "mixtral") {
    return {32000, 4096, 14336, 32, 32, 8, 4096 * 32, 1e-5, 1e6, B::kNone, W::kSlidingWindow};
  }
  return {32000, 4096, 11008, 32, 32, std::nullopt, 2048, 1e-6, 10000.0, B::kFlags, W::kNone};
}

void read_llama_config(ConfigReader& reader, const LlamaVariant& variant, LlamaConfig& c) {
  c.vocab = reader.size("vocab_size", variant.vocab);
  c.hidden = reader.size("hidden_size", variant.hidden);
  c.intermediate = reader.size("intermediate_size", variant.intermediate);
  c.layers = reader.size("num_hidden_layers", variant.layers);
  c.heads = reader.size("num_attention_heads", variant.heads);
  // NOTE: an explicit null means "as many as attention heads" in every one of these configs;
  // only an absent field takes the class default (8 for mistral / mixtral).
  if (reader.is_null("num_key_value_heads") || !variant.kv_heads) {
    c.kv_heads = reader.size("num_key_value_heads", c.heads);
  } else {
    c.kv_heads = reader.size("num_key_value_heads", *variant.kv_heads);
  }
  std::optional<int64_t> head_dim = reader.optional_size("head_dim");
  if (head_dim) {
    c.head_dim = *head_dim;
  } else {
    require_divisible(c.hidden, reader.field("hidden_size"), c.heads, reader.field("num_attention_heads"));
    c.head_dim = c.hidden / c.heads;
    reader.set_derived("head_dim", c.head_dim);
  }
  require_divisible(c.heads, reader.field("num_attention_heads"), c.kv_heads,
                    reader.field("num_key_value_heads"));
  c.max_positions = reader.size("max_position_embeddings", variant.max_positions);
  c.tie_word_embeddings = reader.flag("tie_word_embeddings", false);

  switch (variant.bias) {
    case LlamaVariant::Bias::kFlags: {
      const bool attention_bias = reader.flag("attention_bias", false);
      c.qkv_bias = attention_bias;
      c.o_bias = attention_bias;
      c.mlp_bias = reader.flag("mlp_bias", false);
      break;
    }
    case LlamaVariant::Bias::kQkvAlways: c.qkv_bias = true; break;
    case LlamaVariant::Bias::kNone: break;
  }

  c.hidden_act = reader.text("hidden_act", "silu");
  c.rms_norm_eps = reader.number("rms_norm_eps", variant.rms_norm_eps);
  if (!(c.rms_norm_eps > 0) || !std::isfinite(c.rms_norm_eps)) {
    throw ConfigError(reader.field("rms_norm_eps") + " must be a positive number, got " +
                      describe_json(c.rms_norm_eps) + " (the norm would divide by zero or a negative root)");
  }
  const bool theta_in_rope_parameters =
      reader.has("rope_parameters") && reader.child("rope_parameters").contains("rope_theta");
  if (!theta_in_rope_parameters) reader.number("rope_theta", variant.rope_theta);
  c.rope = read_rope(reader.object(), c.max_positions, variant.rope_theta);

  switch (variant.window) {
    case LlamaVariant::Window::kSlidingWindow: {
      const nlohmann::json& object = reader.object();
      auto it = object.find("sliding_window");
      if (it != object.end() && it->is_number_integer()) c.sliding_window = it->get<int64_t>();
      break;
    }
    case LlamaVariant::Window::kQwenUseSlidingWindow:
      // NOTE: read only when given (absent or null: off), and as a flag: true, false or an error.
      if (reader.has("use_sliding_window") && reader.flag("use_sliding_window", false)) {
        c.executor_unsupported.push_back("use_sliding_window (per-layer windows) is not supported by the executor yet");
      }
      break;
    case LlamaVariant::Window::kNone: break;
  }
  if (c.hidden_act != "silu") {
    c.executor_unsupported.push_back("hidden_act '" + c.hidden_act + "' is not supported by the executor yet (silu)");
  }
  if (c.head_dim % 2 != 0) {
    c.executor_unsupported.push_back("head_dim " + std::to_string(c.head_dim) + " is odd: RoPE needs an even head_dim");
  }
  if (c.rope.type != "default" && c.rope.type != "linear" && c.rope.type != "llama3") {
    c.executor_unsupported.push_back("rope type '" + c.rope.type +
                                     "' is not supported by the executor yet (supported: default, linear, llama3)");
  }
}

void require_executor_support(const LlamaConfig& config) {
  if (!config.executor_unsupported.empty()) {
    throw ConfigError(config.model_type + ": " + config.executor_unsupported.front());
  }
}

}  // namespace shardplan
