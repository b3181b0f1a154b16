// Tests of Whisper's forward (models/whisper/whisper_forward.h). The encoder's output shape (its
// modes sharded through the engine: multimodal_run_test.cc). The decoder (WhisperModel): attention against a by-hand reference, the fused cross-attention
// k/v projection against the separate ones, decoding with the caches against recomputation, each
// module's two tensor-parallel partial outputs against the unsharded module, and the limits.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "executor/runtime/engine.h"
#include "executor/runtime/rank_weights.h"
#include "executor/runtime/workload.h"
#include "executor/weights/safetensors.h"
#include "models/llava/llava_forward.h"
#include "models/whisper/whisper_forward.h"
#include "tests/executor/runtime_test_util.h"

namespace shardplan {
namespace {

using testing::load_plan;
using testing::run_ranks;
using testing::SpecText;
using testing::write_spec;

constexpr int64_t kClips = 3;  // one per request

SpecText whisper_spec(const std::string& mesh, const std::string& modules) {
  SpecText s;
  s.config = "tiny-whisper.json";
  s.mesh = mesh;
  s.modules = modules;
  s.batch = kClips;
  return s;
}

at::Tensor log_mel() { return make_uniform_inputs({kClips, 16, 100}, 0); }  // tiny-whisper: 16 mel, 2 x 50

// The encoder of the unsharded plan on one rank.
const at::Tensor& unsharded() {
  static const at::Tensor states = [] {
    const std::unique_ptr<Plan> plan = load_plan(write_spec("whisper_one", whisper_spec("one: 1", "")));
    const Checkpoint checkpoint = Checkpoint::open(*plan->spec().checkpoint_path);
    const WhisperEncoder encoder(plan->graph(), load_rank_shards(*plan, 0, checkpoint, at::kFloat, at::kCPU));
    return encoder.encode(log_mel(), true, [](const std::string&, at::Tensor h) { return h; });
  }();
  return states;
}

TEST(WhisperEncoderTest, UnshardedStatesHaveTheEncoderShape) {
  at::set_num_threads(1);
  const at::Tensor& s = unsharded();
  EXPECT_EQ(s.sizes(), at::IntArrayRef({kClips, 50, 128}));
  EXPECT_TRUE(at::isfinite(s).all().item<bool>());
  EXPECT_GT((s[0] - s[1]).abs().max().item<double>(), 1e-3);
}

// ---- The decoder (WhisperModel) ----

constexpr int64_t kRequests = 2;
constexpr int64_t kPrompt = 5;  // decoder tokens of the prefill

// The tiny-whisper plans the decoder tests read their shards from: unsharded (every tensor whole),
// and the decoder under tensor over tp (size 2) with the encoder replicated.
const Plan& whole_plan() {
  static const std::unique_ptr<Plan> plan = load_plan(write_spec("whisper_decoder_one", whisper_spec("one: 1", "")));
  return *plan;
}

const Plan& tensor2_plan() {
  static const std::unique_ptr<Plan> plan = load_plan(write_spec(
      "whisper_decoder_tp2",
      whisper_spec("tp: 2", "  - kind: [embedding, attention, cross_attention, mlp, lm_head]\n    mode: tensor\n"
                            "    axes: [tp]\n  - kind: encoder\n    mode: replicate\n")));
  return *plan;
}

TensorShards shards_of(const Plan& plan, int64_t rank) {
  const Checkpoint checkpoint = Checkpoint::open(*plan.spec().checkpoint_path);
  return load_rank_shards(plan, rank, checkpoint, at::kFloat, at::kCPU);
}

size_t module_index(const ModelGraph& graph, const std::string& path) {
  for (size_t i = 0; i < graph.modules.size(); ++i) {
    if (graph.modules[i].path == path) return i;
  }
  throw std::logic_error("no module " + path);
}

const Module& module_of(const ModelGraph& graph, const std::string& path) {
  return graph.modules.at(module_index(graph, path));
}

ModuleInputs inputs(const at::Tensor& main, const at::Tensor& side = at::Tensor()) {
  ModuleInputs in;
  in.main = main;
  in.side = side;
  return in;
}

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

// Deterministic decoder ids in [0, 600) (tiny-whisper's vocabulary), spread over both halves.
at::Tensor decoder_ids(int64_t requests, int64_t tokens) {
  return (at::arange(requests * tokens, at::kLong) * 263 + 11).remainder(600).view({requests, tokens});
}

// Every decoder module of `graph` in order on one step (prefill when `states` is defined): the
// logits of the last position.
at::Tensor run_decoder(WhisperModel& model, const ModelGraph& graph, const at::Tensor& ids, const at::Tensor& states,
                       const StepPositions& step) {
  at::Tensor h;
  for (size_t i = 0; i < graph.modules.size(); ++i) {
    const ModuleKind kind = graph.modules[i].kind;
    if (kind == ModuleKind::kEncoder) continue;
    ModuleInputs in;
    in.main = kind == ModuleKind::kEmbedding ? ids : h;
    if (kind == ModuleKind::kCrossAttention) in.side = states;
    h = model.forward(i, in, step, /*adds_whole_terms=*/true, nullptr);
  }
  return h;
}

// transformers' WhisperAttention, written out with separate k and v projections: queries from
// layer_norm(h), keys and values from `source` (layer_norm(h) itself for self-attention),
// causal when asked, then out_proj with its bias and the residual.
at::Tensor attention_by_hand(const WhisperAttentionWeights& w, const at::Tensor& h, const at::Tensor& source,
                             bool causal) {
  const int64_t b = h.size(0), t = h.size(1), d = 32;  // tiny-whisper: heads of 32
  const at::Tensor x = at::layer_norm(h, {h.size(-1)}, w.norm, w.norm_bias, 1e-5);
  const at::Tensor kv_in = source.defined() ? source : x;
  const at::Tensor q = (at::linear(x, w.q.weight, w.q.bias) * std::pow(d, -0.5)).view({b, t, -1, d}).transpose(1, 2);
  const at::Tensor k = at::linear(kv_in, w.k.weight).view({b, kv_in.size(1), -1, d}).transpose(1, 2);
  const at::Tensor v = at::linear(kv_in, w.v.weight, w.v.bias).view({b, kv_in.size(1), -1, d}).transpose(1, 2);
  at::Tensor scores = at::matmul(q, k.transpose(2, 3));
  if (causal) scores = scores.masked_fill(at::ones({t, t}, at::kBool).triu(1), -INFINITY);
  const at::Tensor attended = at::matmul(at::softmax(scores, -1), v).transpose(1, 2).reshape({b, t, -1});
  return h + at::linear(attended, w.o.weight, w.o.bias);
}

TEST(WhisperDecoderTest, AttentionMatchesTransformersWrittenOut) {
  at::set_num_threads(1);
  const Plan& plan = whole_plan();
  const TensorShards shards = shards_of(plan, 0);
  WhisperModel model(plan.graph(), shards);
  const std::vector<int64_t> requests(plan.graph().modules.size(), kRequests);
  model.allocate(requests, kPrompt);
  const at::Tensor h = make_uniform_inputs({kRequests, kPrompt, 128}, 11);
  const at::Tensor states = make_uniform_inputs({kRequests, 50, 128}, 12);
  const StepPositions step = model.step_positions(0, kPrompt, kPrompt, at::kCPU);

  const std::string self = "model.decoder.layers.1.self_attn", cross = "model.decoder.layers.1.encoder_attn";
  const at::Tensor self_out = model.forward(module_index(plan.graph(), self), inputs(h), step, true, nullptr);
  const at::Tensor self_want = attention_by_hand(whisper_attention_weights(ModuleWeights(module_of(plan.graph(), self), shards)), h, at::Tensor(), true);
  EXPECT_LT(max_diff(self_out, self_want), 1e-5);
  const at::Tensor cross_out =
      model.forward(module_index(plan.graph(), cross), inputs(h, states), step, true, nullptr);
  const at::Tensor cross_want = attention_by_hand(whisper_attention_weights(ModuleWeights(module_of(plan.graph(), cross), shards)), h, states, false);
  EXPECT_LT(max_diff(cross_out, cross_want), 1e-5);
  // Not a residual-only pass: the attention term is there.
  EXPECT_GT(max_diff(cross_out, h), 1e-2);
}

TEST(WhisperDecoderTest, FusedKvProjectionEqualsSeparateKAndV) {
  at::set_num_threads(1);
  const std::string cross = "model.decoder.layers.1.encoder_attn";
  const TensorShards whole_shards = shards_of(whole_plan(), 0);
  const WhisperAttentionWeights whole =
      whisper_attention_weights(ModuleWeights(module_of(whole_plan().graph(), cross), whole_shards));
  const TensorShards rank1_shards = shards_of(tensor2_plan(), 1);
  const WhisperAttentionWeights rank1 =
      whisper_attention_weights(ModuleWeights(module_of(tensor2_plan().graph(), cross), rank1_shards));
  const at::Tensor x = make_uniform_inputs({kRequests, 7, 128}, 5);
  ASSERT_GT(whole.v.bias.abs().max().item<double>(), 1e-3);  // a bias to misplace
  for (const WhisperAttentionWeights* w : {&whole, &rank1}) {
    const WhisperKvProjection kv = whisper_fused_kv(*w);
    const at::Tensor fused = at::linear(x, kv.weight, kv.bias);
    const at::Tensor separate = at::cat({at::linear(x, w->k.weight), at::linear(x, w->v.weight, w->v.bias)}, -1);
    EXPECT_LT(max_diff(fused, separate), 1e-6);
  }
  // The worked example of whisper_forward.h: rank 1 holds heads [2, 4), rows [64, 128) of q, k, v;
  // its W_kv is k's rows then v's rows, b_kv zeros then v's bias rows.
  EXPECT_EQ(rank1_shards.at(cross + ".q_proj.weight").offset, (std::vector<int64_t>{64, 0}));
  const WhisperKvProjection kv = whisper_fused_kv(rank1);
  ASSERT_EQ(kv.weight.sizes(), at::IntArrayRef({128, 128}));
  EXPECT_TRUE(kv.weight.narrow(0, 0, 64).equal(whole.k.weight.narrow(0, 64, 64)));
  EXPECT_TRUE(kv.weight.narrow(0, 64, 64).equal(whole.v.weight.narrow(0, 64, 64)));
  EXPECT_TRUE(kv.bias.narrow(0, 0, 64).equal(at::zeros({64})));
  EXPECT_TRUE(kv.bias.narrow(0, 64, 64).equal(whole.v.bias.narrow(0, 64, 64)));
}

TEST(WhisperDecoderTest, DecodingWithTheCachesEqualsRecomputation) {
  at::set_num_threads(1);
  const Plan& plan = whole_plan();
  const ModelGraph& graph = plan.graph();
  WhisperModel model(graph, shards_of(plan, 0));
  const std::vector<int64_t> requests(graph.modules.size(), kRequests);
  const at::Tensor ids = decoder_ids(kRequests, kPrompt + 1);
  ModuleInputs audio;
  audio.main = log_mel().narrow(0, 0, kRequests);
  const at::Tensor states = model.forward(0, audio, StepPositions{}, true, nullptr);
  ASSERT_EQ(states.sizes(), at::IntArrayRef({kRequests, 50, 128}));

  // Prefill kPrompt tokens, then one decode step against the whole cache.
  model.allocate(requests, kPrompt + 1);
  const at::Tensor prompt_logits = run_decoder(model, graph, ids.narrow(1, 0, kPrompt), states,
                                               model.step_positions(0, kPrompt, kPrompt, at::kCPU));
  const at::Tensor step_logits = run_decoder(model, graph, ids.narrow(1, kPrompt, 1), at::Tensor(),
                                             model.step_positions(kPrompt, 1, kPrompt + 1, at::kCPU));
  // The same kPrompt + 1 tokens in one prefill, on fresh caches.
  model.allocate(requests, kPrompt + 1);
  const at::Tensor whole_logits =
      run_decoder(model, graph, ids, states, model.step_positions(0, kPrompt + 1, kPrompt + 1, at::kCPU));

  ASSERT_EQ(step_logits.sizes(), at::IntArrayRef({kRequests, 600}));
  const double scale = whole_logits.abs().max().item<double>();
  EXPECT_LT(max_diff(step_logits, whole_logits), 1e-5 * std::max(1.0, scale)) << "logits up to " << scale;
  // The step moved the logits (a decode that ignored its token or position would not).
  EXPECT_GT(max_diff(prompt_logits, whole_logits), 1e-3 * std::max(1.0, scale));
}

TEST(WhisperDecoderTest, CrossAttentionDecodeBeforePrefillIsABug) {
  const Plan& plan = whole_plan();
  WhisperModel model(plan.graph(), shards_of(plan, 0));
  const size_t cross = module_index(plan.graph(), "model.decoder.layers.0.encoder_attn");
  const at::Tensor h = make_uniform_inputs({kRequests, 1, 128}, 2);
  const StepPositions step = model.step_positions(0, 1, 4, at::kCPU);
  EXPECT_THROW(model.forward(cross, inputs(h), step, true, nullptr), std::logic_error);  // no caches yet
  model.allocate(std::vector<int64_t>(plan.graph().modules.size(), kRequests), 4);
  EXPECT_THROW(model.forward(cross, inputs(h), step, true, nullptr), std::logic_error);  // caches, no prefill
}

TEST(WhisperDecoderTest, TensorSplitPartialsSumToTheUnshardedModule) {
  at::set_num_threads(1);
  const ModelGraph& graph = whole_plan().graph();
  WhisperModel whole(graph, shards_of(whole_plan(), 0));
  const TensorShards shards0 = shards_of(tensor2_plan(), 0), shards1 = shards_of(tensor2_plan(), 1);
  WhisperModel rank0(tensor2_plan().graph(), shards0), rank1(tensor2_plan().graph(), shards1);
  // The worked example: rank 1 holds vocabulary rows [300, 600).
  EXPECT_EQ(shards1.at("model.decoder.embed_tokens.weight").offset, (std::vector<int64_t>{300, 0}));
  const std::vector<int64_t> requests(graph.modules.size(), kRequests);
  for (WhisperModel* m : {&whole, &rank0, &rank1}) m->allocate(requests, kPrompt + 1);
  const at::Tensor states = make_uniform_inputs({kRequests, 50, 128}, 3);

  std::vector<ModuleKind> seen;
  // Prefill, then a decode step that reads the caches the prefill wrote on each rank.
  for (const bool prefill : {true, false}) {
    const int64_t first = prefill ? 0 : kPrompt, tokens = prefill ? kPrompt : 1;
    const StepPositions step = whole.step_positions(first, tokens, prefill ? kPrompt : kPrompt + 1, at::kCPU);
    for (size_t i = 1; i < graph.modules.size(); ++i) {
      const Module& m = graph.modules[i];
      const std::string what = m.path + (prefill ? " prefill" : " decode");
      ModuleInputs in;
      in.main = m.kind == ModuleKind::kEmbedding ? decoder_ids(kRequests, kPrompt + 1).narrow(1, first, tokens)
                                                 : make_uniform_inputs({kRequests, tokens, 128}, 20 + i);
      if (m.kind == ModuleKind::kCrossAttention && prefill) in.side = states;
      const at::Tensor want = whole.forward(i, in, step, true, nullptr);
      const at::Tensor part0 = rank0.forward(i, in, step, true, nullptr);
      const at::Tensor part1 = rank1.forward(i, in, step, false, nullptr);
      if (m.kind == ModuleKind::kLmHead) {
        // Vocabulary rows: rank 0's logits of ids [0, 300), then rank 1's of [300, 600).
        ASSERT_EQ(part1.sizes(), at::IntArrayRef({kRequests, 300})) << what;
        EXPECT_LT(max_diff(at::cat({part0, part1}, -1), want), 1e-5) << what;
        continue;
      }
      ASSERT_EQ(part1.sizes(), want.sizes()) << what;
      EXPECT_LT(max_diff(part0 + part1, want), 1e-5) << what;
      // Each rank holds a real part of the sum, not all of it.
      EXPECT_GT(max_diff(part1, at::zeros_like(part1)), 1e-3) << what;
      EXPECT_GT(max_diff(part0, want), 1e-3) << what;
      if (prefill) seen.push_back(m.kind);
    }
  }
  for (const ModuleKind kind :
       {ModuleKind::kEmbedding, ModuleKind::kAttention, ModuleKind::kCrossAttention, ModuleKind::kMlp}) {
    EXPECT_NE(std::find(seen.begin(), seen.end(), kind), seen.end()) << to_string(kind);
  }
}

TEST(WhisperDecoderTest, CapacityBeyondMaxTargetPositionsIsRefused) {
  const Plan& plan = whole_plan();
  WhisperModel model(plan.graph(), shards_of(plan, 0));
  const std::vector<int64_t> requests(plan.graph().modules.size(), 1);
  EXPECT_NO_THROW(model.allocate(requests, 64));  // tiny-whisper: max_target_positions 64
  try {
    model.allocate(requests, 65);
    FAIL() << "a capacity of 65 positions was accepted";
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("65"), std::string::npos) << message;
    EXPECT_NE(message.find("max_target_positions = 64"), std::string::npos) << message;
  }
}

// A ModuleComm that records the encoder's after_block calls and doubles what it is given, so that
// a forward that dropped its return value would show.
class RecordingComm : public ModuleComm {
 public:
  int64_t group_size() const override { return 1; }
  int64_t group_index() const override { return 0; }
  const std::vector<int64_t>& expert_member() const override { return none_; }
  at::Tensor exchange_counts(const at::Tensor&) override { throw std::logic_error("not an expert module"); }
  at::Tensor all_to_all(const std::string&, const at::Tensor&, const std::vector<int64_t>&,
                        const std::vector<int64_t>&) override {
    throw std::logic_error("not an expert module");
  }
  at::Tensor after_block(const std::string& child_path, at::Tensor x) override {
    paths.push_back(child_path);
    return x * 2;
  }
  std::vector<std::string> paths;

 private:
  std::vector<int64_t> none_;
};

TEST(WhisperDecoderTest, EncoderModuleCallsAfterBlockForEveryInnerBlock) {
  at::set_num_threads(1);
  const Plan& plan = whole_plan();
  const TensorShards shards = shards_of(plan, 0);
  WhisperModel model(plan.graph(), shards);
  const WhisperEncoder encoder(plan.graph(), shards);
  ModuleInputs in;
  in.main = log_mel();
  RecordingComm comm;
  const at::Tensor doubled = model.forward(0, in, StepPositions{}, true, &comm);
  EXPECT_EQ(comm.paths, (std::vector<std::string>{"model.encoder.layers.0.self_attn", "model.encoder.layers.0.mlp",
                                                  "model.encoder.layers.1.self_attn", "model.encoder.layers.1.mlp"}));
  const at::Tensor want = encoder.encode(log_mel(), true, [](const std::string&, at::Tensor x) { return x * 2; });
  EXPECT_LT(max_diff(doubled, want), 1e-6);
  // Without a comm the blocks follow each other as they are: the unsharded encoder.
  EXPECT_LT(max_diff(model.forward(0, in, StepPositions{}, true, nullptr), unsharded()), 1e-5);
}

}  // namespace
}  // namespace shardplan
