// The Whisper audio encoder on a rank's shards (see whisper_forward.h).
#include "models/whisper/whisper_forward.h"

#include <ATen/ATen.h>

#include <cmath>
#include <stdexcept>
#include <utility>

namespace shardplan {
namespace {

int64_t size_of(const nlohmann::json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end() || !it->is_number_integer()) {
    throw ConfigError(std::string("config field '") + key + "' is missing (the model layer should have set it)");
  }
  return it->get<int64_t>();
}

const at::Tensor& tensor_of(const TensorShards& shards, const std::string& name) {
  auto it = shards.find(name);
  if (it == shards.end()) throw std::invalid_argument("tensor '" + name + "' was not loaded");
  return it->second.tensor;
}

at::Tensor optional_tensor(const TensorShards& shards, const std::string& name) {
  auto it = shards.find(name);
  return it == shards.end() ? at::Tensor() : it->second.tensor;
}

// NOTE: transformers' Whisper layer norms use nn.LayerNorm's default eps.
constexpr double kLayerNormEps = 1e-5;

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  return at::layer_norm(x, {x.size(-1)}, weight, bias, kLayerNormEps);
}

}  // namespace

WhisperEncoderConfig read_whisper_encoder_config(const nlohmann::json& config) {
  WhisperEncoderConfig c;
  c.d_model = size_of(config, "d_model");
  c.heads = size_of(config, "encoder_attention_heads");
  c.head_dim = c.d_model / c.heads;
  c.ffn = size_of(config, "encoder_ffn_dim");
  c.layers = size_of(config, "encoder_layers");
  c.mel_bins = size_of(config, "num_mel_bins");
  c.max_source_positions = size_of(config, "max_source_positions");
  const std::string act = config.value("activation_function", std::string("gelu"));
  if (act != "gelu") {
    throw ConfigError("activation_function '" + act + "' is not supported by the executor yet (gelu)");
  }
  return c;
}

at::Tensor whisper_encoder_attention_forward(const WhisperEncoderConfig& config, const WhisperAttentionWeights& w,
                                             const at::Tensor& h, bool adds_whole_terms) {
  const int64_t b = h.size(0), t = h.size(1), d = config.head_dim;
  const at::Tensor x = layer_norm(h, w.norm, w.norm_bias);
  const auto heads_first = [&](const at::Tensor& y) { return y.view({b, t, -1, d}).transpose(1, 2); };
  const at::Tensor q = heads_first(at::linear(x, w.q, w.q_bias));
  const at::Tensor k = heads_first(at::linear(x, w.k));
  const at::Tensor v = heads_first(at::linear(x, w.v, w.v_bias));
  const at::Tensor scores = at::matmul(q, k.transpose(2, 3)) * (1.0 / std::sqrt(static_cast<double>(d)));
  const at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
  const at::Tensor merged = at::matmul(probs, v).transpose(1, 2).reshape({b, t, -1});
  at::Tensor out = at::linear(merged, w.o, adds_whole_terms ? w.o_bias : at::Tensor());
  if (adds_whole_terms) out = out + h;
  return out;
}

at::Tensor whisper_mlp_forward(const WhisperMlpWeights& w, const at::Tensor& h, bool adds_whole_terms) {
  const at::Tensor x = layer_norm(h, w.norm, w.norm_bias);
  const at::Tensor inner = at::gelu(at::linear(x, w.fc1, w.fc1_bias));
  at::Tensor out = at::linear(inner, w.fc2, adds_whole_terms ? w.fc2_bias : at::Tensor());
  if (adds_whole_terms) out = out + h;
  return out;
}

WhisperEncoder::WhisperEncoder(const ModelGraph& graph, const TensorShards& shards)
    : config_(read_whisper_encoder_config(graph.config)) {
  const Module* encoder = nullptr;
  for (const Module& m : graph.modules) {
    if (m.kind == ModuleKind::kEncoder) encoder = &m;
  }
  if (!encoder) throw std::logic_error("a whisper graph without an encoder");
  const std::string base = encoder->path + ".";
  conv1_ = tensor_of(shards, base + "conv1.weight");
  conv1_bias_ = tensor_of(shards, base + "conv1.bias");
  conv2_ = tensor_of(shards, base + "conv2.weight");
  conv2_bias_ = tensor_of(shards, base + "conv2.bias");
  positions_ = tensor_of(shards, base + "embed_positions.weight");
  norm_ = tensor_of(shards, base + "layer_norm.weight");
  norm_bias_ = tensor_of(shards, base + "layer_norm.bias");
  for (const Module& child : encoder->children) {
    child_paths_.push_back(child.path);
    // "model.encoder.layers.N.self_attn" / "model.encoder.layers.N.mlp" (a virtual path).
    const std::string layer = child.path.substr(0, child.path.rfind('.') + 1);
    if (child.kind == ModuleKind::kAttention) {
      WhisperAttentionWeights a;
      const std::string p = child.path + ".";
      a.norm = tensor_of(shards, layer + "self_attn_layer_norm.weight");
      a.norm_bias = tensor_of(shards, layer + "self_attn_layer_norm.bias");
      a.q = tensor_of(shards, p + "q_proj.weight");
      a.k = tensor_of(shards, p + "k_proj.weight");
      a.v = tensor_of(shards, p + "v_proj.weight");
      a.o = tensor_of(shards, p + "out_proj.weight");
      a.q_bias = optional_tensor(shards, p + "q_proj.bias");
      a.v_bias = optional_tensor(shards, p + "v_proj.bias");
      a.o_bias = optional_tensor(shards, p + "out_proj.bias");
      attention_.push_back(std::move(a));
    } else if (child.kind == ModuleKind::kMlp) {
      WhisperMlpWeights f;
      f.norm = tensor_of(shards, layer + "final_layer_norm.weight");
      f.norm_bias = tensor_of(shards, layer + "final_layer_norm.bias");
      f.fc1 = tensor_of(shards, layer + "fc1.weight");
      f.fc2 = tensor_of(shards, layer + "fc2.weight");
      f.fc1_bias = optional_tensor(shards, layer + "fc1.bias");
      f.fc2_bias = optional_tensor(shards, layer + "fc2.bias");
      mlp_.push_back(std::move(f));
    } else {
      throw std::logic_error("encoder child " + child.path + " is neither attention nor mlp");
    }
  }
  if (static_cast<int64_t>(attention_.size()) != config_.layers || static_cast<int64_t>(mlp_.size()) != config_.layers) {
    throw std::logic_error("the encoder's children do not match encoder_layers");
  }
}

at::Tensor WhisperEncoder::encode(const at::Tensor& features, bool adds_whole_terms,
                                  const AfterBlock& after_block) const {
  const at::Tensor x = features.to(conv1_.scalar_type());
  at::Tensor h = at::gelu(at::conv1d(x, conv1_, conv1_bias_, /*stride=*/at::IntArrayRef{1}, /*padding=*/at::IntArrayRef{1}));
  h = at::gelu(at::conv1d(h, conv2_, conv2_bias_, /*stride=*/at::IntArrayRef{2}, /*padding=*/at::IntArrayRef{1}));
  h = h.permute({0, 2, 1});
  h = h + positions_.narrow(0, 0, h.size(1)).unsqueeze(0);
  for (size_t c = 0; c < child_paths_.size(); ++c) {
    const size_t layer = c / 2;
    h = c % 2 == 0 ? whisper_encoder_attention_forward(config_, attention_[layer], h, adds_whole_terms)
                   : whisper_mlp_forward(mlp_[layer], h, adds_whole_terms);
    h = after_block(child_paths_[c], h);
  }
  return layer_norm(h, norm_, norm_bias_);
}

}  // namespace shardplan
