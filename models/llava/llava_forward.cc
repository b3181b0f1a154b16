// The LLaVA vision tower, projector and image merge on a rank's shards (see llava_forward.h).
#include "models/llava/llava_forward.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

namespace shardplan {
namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
  return at::layer_norm(x, {x.size(-1)}, weight, bias, eps);
}

}  // namespace

LlavaConfig read_llava_config(const nlohmann::json& config) {
  LlavaConfig c;
  const nlohmann::json& vision = config.at("vision_config");
  ClipVisionConfig& v = c.vision;
  v.hidden = size_of(vision, "hidden_size");
  v.intermediate = size_of(vision, "intermediate_size");
  v.heads = size_of(vision, "num_attention_heads");
  v.head_dim = v.hidden / v.heads;
  v.layers = size_of(vision, "num_hidden_layers");
  v.channels = size_of(vision, "num_channels");
  v.image_size = size_of(vision, "image_size");
  v.patch_size = size_of(vision, "patch_size");
  const int64_t side = v.image_size / v.patch_size;
  v.patches = side * side;
  v.layer_norm_eps = vision.value("layer_norm_eps", 1e-5);
  const std::string act = vision.value("hidden_act", std::string("quick_gelu"));
  if (act != "quick_gelu") {
    throw ConfigError("vision_config.hidden_act '" + act + "' is not supported by the executor yet (quick_gelu)");
  }
  const std::string projector_act = config.value("projector_hidden_act", std::string("gelu"));
  if (projector_act != "gelu") {
    throw ConfigError("projector_hidden_act '" + projector_act + "' is not supported by the executor yet (gelu)");
  }
  const nlohmann::json& layer = config.at("vision_feature_layer");
  if (!layer.is_number_integer()) {
    throw ConfigError("vision_feature_layer as a list of layers is not supported by the executor yet");
  }
  const int64_t states = v.layers + 1;
  c.feature_state = layer.get<int64_t>() < 0 ? layer.get<int64_t>() + states : layer.get<int64_t>();
  c.drop_class_token = config.value("vision_feature_select_strategy", std::string("default")) == "default";
  c.tokens_per_image = v.patches + (c.drop_class_token ? 0 : 1);
  // NOTE: transformers' LlavaConfig default (32000) when the config.json leaves it out.
  c.image_token_index = config.value("image_token_index", config.value("image_token_id", int64_t{32000}));
  c.text_vocab = size_of(config.at("text_config"), "vocab_size");
  return c;
}

at::Tensor clip_embeddings_forward(const ClipVisionConfig& config, const ClipEmbeddingWeights& w,
                                   const at::Tensor& pixels) {
  const at::Tensor x = pixels.to(w.patch.scalar_type());
  // [items, hidden, side, side] -> [items, patches, hidden]
  const at::Tensor patches = at::conv2d(x, w.patch, /*bias=*/{}, at::IntArrayRef{config.patch_size, config.patch_size}).flatten(2).transpose(1, 2);
  const at::Tensor cls = w.class_embedding.expand({x.size(0), 1, config.hidden});
  const at::Tensor h = at::cat({cls, patches}, 1) + w.position.unsqueeze(0);
  return layer_norm(h, w.pre_norm, w.pre_norm_bias, config.layer_norm_eps);
}

at::Tensor clip_attention_forward(const ClipVisionConfig& config, const ClipAttentionWeights& w,
                                  const at::Tensor& h, bool adds_whole_terms) {
  const int64_t b = h.size(0), t = h.size(1), d = config.head_dim;
  const at::Tensor x = layer_norm(h, w.norm, w.norm_bias, config.layer_norm_eps);
  const auto heads_first = [&](const at::Tensor& y) { return y.view({b, t, -1, d}).transpose(1, 2); };
  const at::Tensor q = heads_first(at::linear(x, w.q, w.q_bias));
  const at::Tensor k = heads_first(at::linear(x, w.k, w.k_bias));
  const at::Tensor v = heads_first(at::linear(x, w.v, w.v_bias));
  // transformers' eager attention: softmax in float32, back to the activations' dtype.
  const at::Tensor scores = at::matmul(q, k.transpose(2, 3)) * (1.0 / std::sqrt(static_cast<double>(d)));
  const at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
  const at::Tensor merged = at::matmul(probs, v).transpose(1, 2).reshape({b, t, -1});
  at::Tensor out = at::linear(merged, w.o, adds_whole_terms ? w.o_bias : at::Tensor());
  if (adds_whole_terms) out = out + h;
  return out;
}

at::Tensor clip_mlp_forward(const ClipVisionConfig& config, const ClipMlpWeights& w, const at::Tensor& h,
                            bool adds_whole_terms) {
  const at::Tensor x = layer_norm(h, w.norm, w.norm_bias, config.layer_norm_eps);
  const at::Tensor inner = at::linear(x, w.fc1, w.fc1_bias);
  const at::Tensor activated = inner * at::sigmoid(inner * 1.702);  // quick_gelu
  at::Tensor out = at::linear(activated, w.fc2, adds_whole_terms ? w.fc2_bias : at::Tensor());
  if (adds_whole_terms) out = out + h;
  return out;
}

at::Tensor llava_projector_forward(const LlavaProjectorWeights& w, const at::Tensor& features,
                                   bool adds_whole_terms) {
  const at::Tensor inner = at::gelu(at::linear(features, w.linear_1, w.linear_1_bias));
  return at::linear(inner, w.linear_2, adds_whole_terms ? w.linear_2_bias : at::Tensor());
}

at::Tensor llava_merge_image_features(const at::Tensor& embeds, const at::Tensor& ids, const at::Tensor& features,
                                      int64_t image_token_index, bool adds_whole_terms) {
  const at::Tensor mask = ids.eq(image_token_index);
  const int64_t positions = mask.sum().item<int64_t>();
  const int64_t rows = features.numel() / std::max<int64_t>(features.size(-1), 1);
  if (positions != rows) {
    throw std::invalid_argument("the prompts have " + std::to_string(positions) + " image tokens but the images give " +
                                std::to_string(rows) + " feature rows");
  }
  const at::Tensor values = adds_whole_terms ? features.to(embeds.scalar_type()) : at::zeros_like(features, embeds.options());
  return embeds.masked_scatter(mask.unsqueeze(-1).expand_as(embeds), values.reshape({-1, embeds.size(-1)}));
}

LlavaVision::LlavaVision(const ModelGraph& graph, const TensorShards& shards)
    : config_(read_llava_config(graph.config)) {
  bool have_tower = false, have_projector = false;
  for (const Module& m : graph.modules) {
    if (m.kind == ModuleKind::kEncoder) {
      have_tower = true;
      const std::string base = "vision_tower.vision_model.";
      embeddings_.class_embedding = tensor_of(shards, base + "embeddings.class_embedding");
      embeddings_.patch = tensor_of(shards, base + "embeddings.patch_embedding.weight");
      embeddings_.position = tensor_of(shards, base + "embeddings.position_embedding.weight");
      embeddings_.pre_norm = tensor_of(shards, base + "pre_layrnorm.weight");
      embeddings_.pre_norm_bias = tensor_of(shards, base + "pre_layrnorm.bias");
      for (const Module& child : m.children) {
        child_paths_.push_back(child.path);
        // child.path is "...encoder.layers.N.self_attn" or "...encoder.layers.N.mlp".
        const std::string layer = child.path.substr(0, child.path.rfind('.') + 1);
        if (child.kind == ModuleKind::kAttention) {
          ClipAttentionWeights a;
          const std::string p = child.path + ".";
          a.norm = tensor_of(shards, layer + "layer_norm1.weight");
          a.norm_bias = tensor_of(shards, layer + "layer_norm1.bias");
          a.q = tensor_of(shards, p + "q_proj.weight");
          a.k = tensor_of(shards, p + "k_proj.weight");
          a.v = tensor_of(shards, p + "v_proj.weight");
          a.o = tensor_of(shards, p + "out_proj.weight");
          a.q_bias = optional_tensor(shards, p + "q_proj.bias");
          a.k_bias = optional_tensor(shards, p + "k_proj.bias");
          a.v_bias = optional_tensor(shards, p + "v_proj.bias");
          a.o_bias = optional_tensor(shards, p + "out_proj.bias");
          attention_.push_back(std::move(a));
        } else if (child.kind == ModuleKind::kMlp) {
          ClipMlpWeights f;
          const std::string p = child.path + ".";
          f.norm = tensor_of(shards, layer + "layer_norm2.weight");
          f.norm_bias = tensor_of(shards, layer + "layer_norm2.bias");
          f.fc1 = tensor_of(shards, p + "fc1.weight");
          f.fc2 = tensor_of(shards, p + "fc2.weight");
          f.fc1_bias = optional_tensor(shards, p + "fc1.bias");
          f.fc2_bias = optional_tensor(shards, p + "fc2.bias");
          mlp_.push_back(std::move(f));
        } else {
          throw std::logic_error("vision tower child " + child.path + " is neither attention nor mlp");
        }
      }
    } else if (m.kind == ModuleKind::kProjector) {
      have_projector = true;
      for (const Param& p : m.params) {
        at::Tensor* field = nullptr;
        if (ends_with(p.name, "linear_1.weight")) field = &projector_.linear_1;
        if (ends_with(p.name, "linear_1.bias")) field = &projector_.linear_1_bias;
        if (ends_with(p.name, "linear_2.weight")) field = &projector_.linear_2;
        if (ends_with(p.name, "linear_2.bias")) field = &projector_.linear_2_bias;
        if (!field) throw std::invalid_argument("projector tensor the llava forward does not know: " + p.name);
        *field = tensor_of(shards, p.name);
      }
    }
  }
  if (!have_tower || !have_projector) throw std::logic_error("a llava graph without vision tower or projector");
  if (static_cast<int64_t>(attention_.size()) != config_.vision.layers ||
      static_cast<int64_t>(mlp_.size()) != config_.vision.layers) {
    throw std::logic_error("the vision tower's children do not match vision_config.num_hidden_layers");
  }
}

at::Tensor LlavaVision::encode(const at::Tensor& pixels, bool adds_whole_terms, const AfterBlock& after_block) const {
  at::Tensor h = clip_embeddings_forward(config_.vision, embeddings_, pixels);
  at::Tensor feature = config_.feature_state == 0 ? h : at::Tensor();
  // Children alternate self_attn, mlp; hidden state s (s >= 1) is the output of layer s - 1,
  // i.e. of child 2s - 1 after the runtime's collectives.
  for (size_t c = 0; c < child_paths_.size(); ++c) {
    const size_t layer = c / 2;
    h = c % 2 == 0 ? clip_attention_forward(config_.vision, attention_[layer], h, adds_whole_terms)
                   : clip_mlp_forward(config_.vision, mlp_[layer], h, adds_whole_terms);
    h = after_block(child_paths_[c], h);
    if (static_cast<int64_t>(c) == 2 * config_.feature_state - 1) feature = h;
  }
  return config_.drop_class_token ? feature.narrow(1, 1, config_.vision.patches) : feature;
}

at::Tensor LlavaVision::project(const at::Tensor& features, bool adds_whole_terms) const {
  return llava_projector_forward(projector_, features, adds_whole_terms);
}

LlavaModel::LlavaModel(const ModelGraph& graph, const TensorShards& shards)
    : vision_(graph, shards),
      text_(graph, graph.config.at("text_config"), shards, [](const Module& m) { return m.stream == Stream::kText; }) {
  for (const Module& m : graph.modules) {
    kinds_.push_back(m.kind);
    paths_.push_back(m.path);
  }
}

void LlavaModel::allocate(const std::vector<int64_t>& requests, int64_t capacity) { text_.allocate(requests, capacity); }

StepPositions LlavaModel::step_positions(int64_t first, int64_t tokens, int64_t attend_len, at::Device device) const {
  return text_.step_positions(first, tokens, attend_len, device);
}

at::Tensor LlavaModel::forward(size_t i, const ModuleInputs& in, const StepPositions& step, bool adds_whole_terms,
                               ModuleComm* comm) {
  switch (kinds_.at(i)) {
    case ModuleKind::kEncoder:
      return vision_.encode(in.main, adds_whole_terms, [comm](const std::string& child, at::Tensor x) {
        return comm ? comm->after_block(child, std::move(x)) : x;
      });
    case ModuleKind::kProjector: return vision_.project(in.main, adds_whole_terms);
    default: break;
  }
  if (!text_.holds(i)) throw std::logic_error("module " + paths_.at(i) + " outside the llava forward");
  ModuleInputs text_in;
  text_in.main = in.main;
  if (in.side.defined()) {
    if (!in.ids.defined()) throw std::logic_error("image features for " + paths_.at(i) + " without the prompt ids");
    // NOTE: the text stream is whole here (the plan reduces it before the merge), so the
    // features go in once on every rank.
    text_in.main = llava_merge_image_features(in.main, in.ids, in.side.to(in.main.scalar_type()),
                                              vision_.config().image_token_index, /*adds_whole_terms=*/true);
  }
  return text_.forward(i, text_in, step, adds_whole_terms);
}

}  // namespace shardplan
