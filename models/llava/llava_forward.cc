// The LLaVA vision tower, projector and image merge on a rank's shards (see llava_forward.h).
#include "models/llava/llava_forward.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

#include "models/layers/attention.h"
#include "models/layers/norm.h"
#include "models/layers/weights.h"

namespace shardplan {
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
  const int64_t d = config.head_dim;
  const at::Tensor x = layer_norm(h, w.norm, w.norm_bias, config.layer_norm_eps);
  const at::Tensor q = heads_first(w.q.forward(x), d);
  const at::Tensor k = heads_first(w.k.forward(x), d);
  const at::Tensor v = heads_first(w.v.forward(x), d);
  at::Tensor out = w.o.forward(heads_merged(attend(q, k, v, at::Tensor())), adds_whole_terms);
  if (adds_whole_terms) out = out + h;
  return out;
}

at::Tensor clip_mlp_forward(const ClipVisionConfig& config, const ClipMlpWeights& w, const at::Tensor& h,
                            bool adds_whole_terms) {
  const at::Tensor x = layer_norm(h, w.norm, w.norm_bias, config.layer_norm_eps);
  const at::Tensor inner = w.fc1.forward(x);
  const at::Tensor activated = inner * at::sigmoid(inner * 1.702);  // quick_gelu
  at::Tensor out = w.fc2.forward(activated, adds_whole_terms);
  if (adds_whole_terms) out = out + h;
  return out;
}

at::Tensor llava_projector_forward(const LlavaProjectorWeights& w, const at::Tensor& features,
                                   bool adds_whole_terms) {
  return w.linear_2.forward(at::gelu(w.linear_1.forward(features)), adds_whole_terms);
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
    : config_(graph.typed_config<LlavaConfig>()) {
  if (!config_.executor_unsupported.empty()) {
    throw ConfigError("llava: " + config_.executor_unsupported.front());
  }
  bool have_tower = false, have_projector = false;
  for (const Module& m : graph.modules) {
    if (m.kind == ModuleKind::kEncoder) {
      have_tower = true;
      const ModuleWeights tower(m, shards);
      embeddings_.class_embedding = tower.weight(ParamRole::kClassEmbedding);
      embeddings_.patch = tower.weight(ParamRole::kPatchEmbedding);
      embeddings_.position = tower.weight(ParamRole::kPositionEmbedding);
      embeddings_.pre_norm = tower.weight(ParamRole::kPreNorm);
      embeddings_.pre_norm_bias = tower.bias(ParamRole::kPreNorm);
      for (const Module& child : m.children) {
        child_paths_.push_back(child.path);
        const ModuleWeights w(child, shards);
        if (child.kind == ModuleKind::kAttention) {
          ClipAttentionWeights a;
          a.norm = w.weight(ParamRole::kNorm);
          a.norm_bias = w.bias(ParamRole::kNorm);
          a.q = column_parallel(w, {ParamRole::kQuery});
          a.k = column_parallel(w, {ParamRole::kKey});
          a.v = column_parallel(w, {ParamRole::kValue});
          a.o = row_parallel(w, {ParamRole::kOutput});
          attention_.push_back(std::move(a));
        } else if (child.kind == ModuleKind::kMlp) {
          ClipMlpWeights f;
          f.norm = w.weight(ParamRole::kNorm);
          f.norm_bias = w.bias(ParamRole::kNorm);
          f.fc1 = column_parallel(w, {ParamRole::kFc1});
          f.fc2 = row_parallel(w, {ParamRole::kFc2});
          mlp_.push_back(std::move(f));
        } else {
          throw std::logic_error("vision tower child " + child.path + " is neither attention nor mlp");
        }
      }
    } else if (m.kind == ModuleKind::kProjector) {
      have_projector = true;
      const ModuleWeights w(m, shards);
      projector_.linear_1 = column_parallel(w, {ParamRole::kFc1});
      projector_.linear_2 = row_parallel(w, {ParamRole::kFc2});
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
      text_(graph, graph.typed_config<LlavaConfig>().text, shards,
            [](const Module& m) { return m.stream == Stream::kText; }) {
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
