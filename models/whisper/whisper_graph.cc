// Whisper's module tree: audio encoder as one encoder module, decoder with cross-attention.
#include "models/whisper/whisper_graph.h"

#include <memory>
#include <string>
#include <vector>

#include "models/graph/config_reader.h"
#include "models/graph/module_builder.h"
#include "models/whisper/whisper_config.h"

namespace shardplan {
namespace {

void resolve_alias(nlohmann::json& config, const std::string& alias, const std::string& key) {
  auto alias_it = config.find(alias);
  if (alias_it == config.end() || alias_it->is_null()) return;
  auto key_it = config.find(key);
  if (key_it == config.end() || key_it->is_null()) {
    config[key] = *alias_it;
  } else if (*key_it != *alias_it) {
    throw ConfigError(alias + " " + describe_json(*alias_it) + " contradicts " + key + " " +
                      describe_json(*key_it) + " (in Whisper, " + alias + " is another name for " +
                      key + ")");
  }
}

void read_whisper_config(ConfigReader& reader, nlohmann::json& config, WhisperConfig& dims) {
  resolve_alias(config, "hidden_size", "d_model");
  resolve_alias(config, "num_attention_heads", "encoder_attention_heads");
  resolve_alias(config, "num_hidden_layers", "encoder_layers");
  // NOTE: transformers' WhisperConfig defaults, the sizes of openai/whisper-tiny.
  dims.vocab = reader.size("vocab_size", 51865);
  dims.mel_bins = reader.size("num_mel_bins", 80);
  dims.d_model = reader.size("d_model", 384);
  dims.encoder_layers = reader.size("encoder_layers", 4);
  dims.encoder_heads = reader.size("encoder_attention_heads", 6);
  dims.encoder_ffn = reader.size("encoder_ffn_dim", 1536);
  dims.decoder_layers = reader.size("decoder_layers", 4);
  dims.decoder_heads = reader.size("decoder_attention_heads", 6);
  dims.decoder_ffn = reader.size("decoder_ffn_dim", 1536);
  dims.max_source_positions = reader.size("max_source_positions", 1500);
  dims.max_target_positions = reader.size("max_target_positions", 448);
  dims.tie_word_embeddings = reader.flag("tie_word_embeddings", true);
  dims.activation_function = reader.text("activation_function", "gelu");
  dims.scale_embedding = reader.flag("scale_embedding", false);
  if (dims.activation_function != "gelu") {
    dims.executor_unsupported.push_back("activation_function '" + dims.activation_function +
                                        "' is not supported by the executor yet (gelu)");
  }
  require_divisible(dims.d_model, "d_model", dims.encoder_heads, "encoder_attention_heads");
  require_divisible(dims.d_model, "d_model", dims.decoder_heads, "decoder_attention_heads");
}

ModuleDims attention_dims(int64_t d_model, int64_t heads) {
  ModuleDims dims;
  dims.hidden = d_model;
  dims.heads = heads;
  dims.kv_heads = heads;
  dims.head_dim = d_model / heads;
  return dims;
}

// Whisper attention: q/k/v column-parallel over the heads (k_proj has no bias), out_proj
// row-parallel. `path` is ".../self_attn" or ".../encoder_attn".
void add_whisper_attention(Module& module, int64_t d_model, int64_t heads) {
  add_column_linear(module, module.path + ".q_proj", d_model, d_model, heads, /*has_bias=*/true,
                    ParamRole::kQuery);
  add_column_linear(module, module.path + ".k_proj", d_model, d_model, heads, /*has_bias=*/false,
                    ParamRole::kKey);
  add_column_linear(module, module.path + ".v_proj", d_model, d_model, heads, /*has_bias=*/true,
                    ParamRole::kValue);
  add_row_linear(module, module.path + ".out_proj", d_model, d_model, heads, /*has_bias=*/true,
                 ParamRole::kOutput);
}

// The virtual MLP module of one layer: "<layer>.mlp" owning "<layer>.fc1", "<layer>.fc2" and
// "<layer>.final_layer_norm".
Module whisper_mlp_module(const std::string& layer_base, int64_t d_model, int64_t ffn,
                          Stream stream, int layer) {
  Module mlp = make_module(layer_base + "mlp", ModuleKind::kMlp, stream, layer);
  mlp.dims.hidden = d_model;
  mlp.dims.intermediate = ffn;
  add_norm(mlp, layer_base + "final_layer_norm", d_model, /*has_bias=*/true);
  add_column_linear(mlp, layer_base + "fc1", ffn, d_model, ffn, /*has_bias=*/true, ParamRole::kFc1);
  add_row_linear(mlp, layer_base + "fc2", d_model, ffn, ffn, /*has_bias=*/true, ParamRole::kFc2);
  return mlp;
}

Module whisper_encoder_module(const WhisperConfig& dims) {
  Module encoder = make_module("model.encoder", ModuleKind::kEncoder, Stream::kAudio);
  encoder.dims = attention_dims(dims.d_model, dims.encoder_heads);
  encoder.dims.intermediate = dims.encoder_ffn;
  encoder.dims.layers = dims.encoder_layers;

  const int64_t d = dims.d_model;
  add_param(encoder, "model.encoder.conv1.weight", {d, dims.mel_bins, 3}, no_split(), ParamRole::kConv1);
  add_param(encoder, "model.encoder.conv1.bias", {d}, no_split(), ParamRole::kConv1).bias = true;
  add_param(encoder, "model.encoder.conv2.weight", {d, d, 3}, no_split(), ParamRole::kConv2);
  add_param(encoder, "model.encoder.conv2.bias", {d}, no_split(), ParamRole::kConv2).bias = true;
  add_param(encoder, "model.encoder.embed_positions.weight", {dims.max_source_positions, d},
            no_split(), ParamRole::kPositionEmbedding);
  for (int layer = 0; layer < dims.encoder_layers; ++layer) {
    const std::string base = "model.encoder.layers." + std::to_string(layer) + ".";
    Module attention = make_module(base + "self_attn", ModuleKind::kAttention, Stream::kAudio);
    attention.dims = attention_dims(d, dims.encoder_heads);
    add_norm(attention, base + "self_attn_layer_norm", d, /*has_bias=*/true);
    add_whisper_attention(attention, d, dims.encoder_heads);
    Module mlp = whisper_mlp_module(base, d, dims.encoder_ffn, Stream::kAudio, /*layer=*/-1);
    for (const Module* child : {&attention, &mlp}) {
      encoder.params.insert(encoder.params.end(), child->params.begin(), child->params.end());
    }
    encoder.children.push_back(std::move(attention));
    encoder.children.push_back(std::move(mlp));
  }
  add_norm(encoder, "model.encoder.layer_norm", d, /*has_bias=*/true, ParamRole::kFinalNorm);
  return encoder;
}

}  // namespace

ModelGraph build_whisper_graph(const nlohmann::json& config) {
  ModelGraph graph;
  graph.family = whisper_family().name;
  graph.config = config;
  ConfigReader reader(graph.config, "", &graph.defaulted_fields);
  graph.model_type = reader.text("model_type", "whisper");
  auto typed = std::make_shared<WhisperConfig>();
  read_whisper_config(reader, graph.config, *typed);
  graph.family_config = typed;
  const WhisperConfig& dims = *typed;
  const int64_t d = dims.d_model;

  graph.modules.push_back(whisper_encoder_module(dims));

  Module embedding =
      make_module("model.decoder.embed_tokens", ModuleKind::kEmbedding, Stream::kText);
  embedding.dims.hidden = d;
  embedding.dims.vocab = dims.vocab;
  add_param(embedding, "model.decoder.embed_tokens.weight", {dims.vocab, d},
            split_units(0, dims.vocab), ParamRole::kEmbedding);
  add_param(embedding, "model.decoder.embed_positions.weight", {dims.max_target_positions, d},
            no_split(), ParamRole::kPositionEmbedding);
  graph.modules.push_back(std::move(embedding));

  for (int layer = 0; layer < dims.decoder_layers; ++layer) {
    const std::string base = "model.decoder.layers." + std::to_string(layer) + ".";
    Module self_attention =
        make_module(base + "self_attn", ModuleKind::kAttention, Stream::kText, layer);
    self_attention.dims = attention_dims(d, dims.decoder_heads);
    add_norm(self_attention, base + "self_attn_layer_norm", d, /*has_bias=*/true);
    add_whisper_attention(self_attention, d, dims.decoder_heads);
    graph.modules.push_back(std::move(self_attention));

    Module cross_attention =
        make_module(base + "encoder_attn", ModuleKind::kCrossAttention, Stream::kText, layer);
    cross_attention.kv_stream = Stream::kAudio;
    cross_attention.dims = attention_dims(d, dims.decoder_heads);
    cross_attention.dims.kv_source_hidden = d;  // the encoder's width: Whisper has one d_model
    add_norm(cross_attention, base + "encoder_attn_layer_norm", d, /*has_bias=*/true);
    add_whisper_attention(cross_attention, d, dims.decoder_heads);
    graph.modules.push_back(std::move(cross_attention));

    graph.modules.push_back(whisper_mlp_module(base, d, dims.decoder_ffn, Stream::kText, layer));
  }

  Module lm_head = make_module("proj_out", ModuleKind::kLmHead, Stream::kText);
  lm_head.dims.hidden = d;
  lm_head.dims.vocab = dims.vocab;
  add_norm(lm_head, "model.decoder.layer_norm", d, /*has_bias=*/true, ParamRole::kFinalNorm);
  if (dims.tie_word_embeddings) {
    graph.tied_lm_head_to = "model.decoder.embed_tokens.weight";
  } else {
    add_param(lm_head, "proj_out.weight", {dims.vocab, d}, split_units(0, dims.vocab), ParamRole::kLmHead);
  }
  graph.modules.push_back(std::move(lm_head));

  graph.hidden = d;
  graph.vocab = dims.vocab;
  graph.workload.encoder_tokens_per_clip = dims.max_source_positions;
  graph.workload.max_target_positions = dims.max_target_positions;
  graph.workload.learned_positions = true;
  graph.workload.mel_bins = dims.mel_bins;
  return graph;
}

const Family& whisper_family() {
  static const Family family{"whisper", {"whisper"}, &build_whisper_graph, nullptr};
  return family;
}

}  // namespace shardplan
