// The LLaVA-specific forward on one rank's shards (libtorch): the CLIP vision tower, feature
// selection as llava-1.5, the GELU projector and the merge of image features into the text
// embeddings. The language model is the Llama forward (models/llama/llama_forward.h). No
// communication here: the tower calls back after each inner block so that the runtime runs the
// plan's collectives whose `after` is that block (tensor mode: the all_reduce of its partial sum).
//
// Shapes: pixels [items, channels, image_size, image_size]; tower hidden states
// [items, patches + 1, vision hidden] (the class token first); features
// [items, tokens_per_image, vision hidden]; projected [items, tokens_per_image, text hidden].
//
// Worked example, tiny-llava (vision: 4 heads of 16, 3 layers, 56 px at patch 14 -> 16 patches)
// with the encoder under tensor over [tp] (size 2): rank 1 holds heads [2, 4) (q/k/v_proj rows
// [32, 64) and their biases, out_proj columns [32, 64)), fc1 rows [64, 128), fc2 columns
// [64, 128). Every block's output is partial; the runtime's all_reduce after
// vision_tower.vision_model.encoder.layers.N.self_attn / .mlp makes it whole. vision_feature_layer
// -2 takes hidden state 2 of 0..3 (the output of layer 1, i.e. after the reduce that follows
// child 3, layers.1.mlp); 'default' drops the class token: 16 tokens per image.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/forward/family_model.h"
#include "models/forward/tensor_shard.h"
#include "models/graph/model_graph.h"
#include "models/layers/linear.h"
#include "models/llama/llama_forward.h"
#include "models/llava/llava_config.h"

namespace shardplan {

// One rank's weights (undefined tensors for absent biases). Column-parallel weights and their
// biases are the rank's rows; row-parallel weights its columns, their biases whole.
struct ClipEmbeddingWeights {
  at::Tensor class_embedding;   // [hidden]
  at::Tensor patch;             // patch_embedding.weight [hidden, channels, patch, patch] (no bias)
  at::Tensor position;          // [patches + 1, hidden]
  at::Tensor pre_norm, pre_norm_bias;  // pre_layrnorm
};

struct ClipAttentionWeights {
  at::Tensor norm, norm_bias;     // layer_norm1
  ColumnParallelLinear q, k, v;   // [heads held * head_dim, hidden]
  RowParallelLinear o;            // out_proj [hidden, heads held * head_dim]
};

struct ClipMlpWeights {
  at::Tensor norm, norm_bias;     // layer_norm2
  ColumnParallelLinear fc1;
  RowParallelLinear fc2;
};

struct LlavaProjectorWeights {
  ColumnParallelLinear linear_1;
  RowParallelLinear linear_2;
};

// patch conv (stride = patch, no bias), class token first, + position embeddings, pre_layrnorm.
at::Tensor clip_embeddings_forward(const ClipVisionConfig& config, const ClipEmbeddingWeights& w,
                                   const at::Tensor& pixels);

// h + out_proj(attention(layer_norm1(h))) over the rank's heads (no mask: every patch sees every
// patch). `adds_whole_terms`: add h and out_proj's bias (false: the partial product alone).
at::Tensor clip_attention_forward(const ClipVisionConfig& config, const ClipAttentionWeights& w,
                                  const at::Tensor& h, bool adds_whole_terms);

// h + fc2(quick_gelu(fc1(layer_norm2(h)))), quick_gelu(x) = x * sigmoid(1.702 x).
at::Tensor clip_mlp_forward(const ClipVisionConfig& config, const ClipMlpWeights& w, const at::Tensor& h,
                            bool adds_whole_terms);

// linear_2(gelu(linear_1(x))) (exact, erf gelu); linear_2's bias only with `adds_whole_terms`.
at::Tensor llava_projector_forward(const LlavaProjectorWeights& w, const at::Tensor& features,
                                   bool adds_whole_terms);

// transformers' masked_scatter of the image features into the text embeddings: the positions
// where ids == image_token_index take the rows of `features` ([items, tokens_per_image, hidden],
// items in request order) in order. `embeds` [requests, tokens, hidden], ids [requests, tokens].
// With `adds_whole_terms` false (a partial embedding on a rank other than its group's rank 0)
// those positions take zeros instead, so that the sum over the group has the features once.
// Checks (std::invalid_argument): the number of image positions equals features' rows.
at::Tensor llava_merge_image_features(const at::Tensor& embeds, const at::Tensor& ids, const at::Tensor& features,
                                      int64_t image_token_index, bool adds_whole_terms);

// The vision tower and the projector of one rank.
class LlavaVision {
 public:
  // Called after each inner block (graph path of the tower's child) with its output; returns the
  // value the next block reads (the runtime runs the plan's collectives after that child there).
  using AfterBlock = std::function<at::Tensor(const std::string& child_path, at::Tensor)>;

  // Picks the tower's and the projector's tensors out of `shards` by Hub name. Throws ConfigError
  // for an unsupported config, std::invalid_argument for a missing tensor.
  LlavaVision(const ModelGraph& graph, const TensorShards& shards);

  const LlavaConfig& config() const { return config_; }

  // pixels -> features [items, tokens_per_image, vision hidden]: embeddings, every layer (as
  // transformers, the layers past the feature layer run too; their output is dropped), the
  // hidden state vision_feature_layer, the class token dropped under 'default'. Inner blocks
  // leave partial sums when `adds_whole_terms` is false; `after_block` must make them whole.
  at::Tensor encode(const at::Tensor& pixels, bool adds_whole_terms, const AfterBlock& after_block) const;

  // features -> [items, tokens_per_image, text hidden] (partial under tensor mode).
  at::Tensor project(const at::Tensor& features, bool adds_whole_terms) const;

 private:
  LlavaConfig config_;
  ClipEmbeddingWeights embeddings_;
  std::vector<std::string> child_paths_;         // self_attn, mlp, self_attn, ... (graph order)
  std::vector<ClipAttentionWeights> attention_;  // per layer
  std::vector<ClipMlpWeights> mlp_;
  LlavaProjectorWeights projector_;
};

// The whole llava model on one rank: the vision tower and the projector (LlavaVision), and the
// Llama language model (LlamaModel over the text modules, with text_config). The engine runs the
// tower and the projector in prefill; the first text module after the embedding gets the image
// features whole for its requests (ModuleInputs::side) with the prompt ids, and merges them
// before it computes (transformers' masked_scatter at the image tokens).
class LlavaModel : public FamilyModel {
 public:
  // Throws ConfigError for an unsupported config, std::invalid_argument for a missing tensor.
  LlavaModel(const ModelGraph& graph, const TensorShards& shards);

  void allocate(const std::vector<int64_t>& requests, int64_t capacity) override;
  StepPositions step_positions(int64_t first, int64_t tokens, int64_t attend_len, at::Device device) const override;
  // The tower: pixels -> selected features (its inner blocks call comm->after_block); the
  // projector: features -> text-width features; text modules as LlamaModel, merging `in.side`
  // at the image tokens of `in.ids` first where it is given.
  at::Tensor forward(size_t i, const ModuleInputs& in, const StepPositions& step, bool adds_whole_terms,
                     ModuleComm* comm) override;

  bool takes_ragged_prompts() const override { return true; }  // RoPE
  // The caches are the language model's (the other modules keep nothing across steps).
  bool keeps_rows() const override { return true; }
  void keep_rows(const at::Tensor& rows) override { text_.keep_rows(rows); }
  void all_rows() override { text_.all_rows(); }

 private:
  LlavaVision vision_;
  LlamaPart text_;                     // the language model's modules
  std::vector<ModuleKind> kinds_;      // per graph module
  std::vector<std::string> paths_;     // per graph module
};

}  // namespace shardplan
