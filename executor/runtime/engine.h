// The engine of one rank: prefill, then greedy decoding with the KV cache, walking the plan's
// modules and binding the plan's collectives through the Communicator (docs/executor-design.md):
//   - in front of module m, the collectives whose `before` is m, in plan order; then the local
//     slice the layout change asks for (replicated -> batch-split: the rank keeps its requests);
//   - after the last module, the collectives whose `before` is "output";
//   - a module whose output is partial adds the residual (and row-parallel biases) only on the
//     ranks whose coordinate on every partial axis is 0;
//   - the greedy token is the argmax over whole logits.
// The engine decides nothing the plan already says; it refuses (RunError, exit 2) a plan it
// cannot bind rather than run something else.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "executor/comm/communicator.h"
#include "executor/runtime/request_blocks.h"
#include "executor/runtime/workload.h"
#include "models/forward/family_model.h"
#include "models/forward/tensor_shard.h"
#include "planner/plan/plan.h"

namespace shardplan {

struct EngineOptions {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
  bool keep_logits = false;  // keep each step's whole logits of the rank's requests (--verify)
};

// What one rank generated, for the requests it holds at the end of the forward pass.
struct Generation {
  RequestRange requests;
  at::Tensor tokens;          // [requests, new_tokens] int64, CPU
  at::Tensor logits;          // [new_tokens, requests, vocab] float32, CPU (keep_logits only)
  double first_token_s = 0;   // from the start of prefill to the first tokens on this rank
  double last_token_s = 0;    // ... to the last tokens
  // Seconds spent per module kind (engine_time_categories() order: the module kinds, then
  // "collectives": the plan's collectives, those inside a module included, and the exchange of
  // sampled tokens). On CUDA each module ends with a wait for the device so the split is real.
  std::vector<double> seconds_by_kind;
};

// One of the plan's collectives as this rank runs it.
struct BoundCollective {
  CollectiveOp op = CollectiveOp::kAllReduce;
  int64_t dim = 0;            // all_gather / reduce_scatter: 0 requests (or items), -1 vocabulary
  RankList group;             // the group holding this rank
  std::string what;           // "all_reduce[tp] after model.layers.0.self_attn"
  int64_t keep_rows = -1;     // all_gather of a data-parallel encoder's items: keep this many (drop the padding)
};

// A local slice of rows (requests, or an encoder stream's items) along dim 0.
struct RowSlice {
  bool active = false;
  int64_t begin = 0, count = 0;
  int64_t padded = 0;         // > 0: the rows are first padded to this many (a data-parallel encoder's items)
};

// What this rank does around one module.
struct ModuleBinding {
  Stream stream = Stream::kText;        // the module's own stream (image / audio: prefill only)
  std::vector<BoundCollective> before;  // the collectives on its stream whose `before` is the module
  RowSlice slice;                       // then the local slice of its input rows
  int64_t requests = 0;                 // requests the module computes on (text), or whose items it encodes
  // Residual and row-parallel biases (false: partial, not group rank 0); for a tensor-parallel
  // encoder, those of its inner blocks.
  bool adds_whole_terms = true;
  // An encoder's inner blocks: the collectives after each (graph path of the child -> in plan order).
  std::map<std::string, std::vector<BoundCollective>> after_block;
  // A text module that reads another stream in prefill (cross-attention: the encoder states; the
  // first module after llava's embedding: the image features, merged at the image tokens):
  // that stream's collectives in front of it, then its local slice; the rows are then the items
  // of exactly the module's requests.
  bool reads_side = false;
  Stream side_stream = Stream::kText;
  bool merges_side = false;             // llava: the module gets the prompt ids of its requests too
  std::vector<BoundCollective> side_before;
  RowSlice side_slice;
  RequestRange request_range;           // the requests the module computes on
  // Expert-mode MoE with batch-split tokens: the plan's all_to_all pair (purpose dispatch /
  // combine) runs inside the module, over `exchange_group`; expert_member[e] is the member of
  // that group that computes expert e for this rank's tokens (-1: another rank of its partial group).
  bool exchange = false;
  RankList exchange_group;
  std::vector<int64_t> expert_member;
  std::string dispatch_what, combine_what;
};

// The plan bound for one rank; computed from the plan alone (no weights), so it is also the
// check that the executor can run the plan at all.
struct PlanBinding {
  std::vector<ModuleBinding> modules;   // as plan.modules
  std::vector<BoundCollective> output;  // the collectives whose `before` is "output"
  bool exchange_tokens = false;         // the sampled tokens are gathered back to the input layout
  BoundCollective token_exchange;
  RequestRange input_requests;          // the rank's prompts
  RequestRange output_requests;         // the rank's logits and tokens
};

// The names of Generation::seconds_by_kind, in order: every ModuleKind's name, then "collectives".
std::vector<std::string> engine_time_categories();

// The model families the engine runs (those with a forward: models/forward/family_model.h).
bool engine_supports_family(const std::string& family);

// Binds `plan` for `rank`. Checks (RunError kUsage, "... not supported by the executor yet"): the
// family has a forward; every collective sits in front of a module, after an encoder's inner
// block or at the output, and is an all_reduce, reduce_scatter or all_gather, or an all_to_all
// pair (dispatch / combine) around an expert-mode MoE; every gather, scatter and local slice of
// requests keeps them in the order of request_blocks.h (with requests split over axes that
// come, in mesh order, after a batch axis that they join, e.g. {tp: 2, dp: 2} with batch_axes
// [dp] and attention data-parallel over [tp], they cannot). Encoder streams (llava's images,
// whisper's audio) hold the items of the requests their layout holds (request order, images of
// a request together); a data-parallel encoder pads those items to a multiple of its group and
// encodes its contiguous share; the all_gather over the same axes drops the padding; where they
// reach the text stream they must be the items of exactly the module's requests.
PlanBinding bind_plan(const Plan& plan, int64_t rank);

// The requests `rank` holds at the end of the forward pass (its logits and tokens).
RequestRange output_requests(const Plan& plan, int64_t rank);

// Every rank group a run of `plan` uses (the plan's collectives, the exchange of sampled tokens,
// the whole world), each once, sorted: what Communicator::create_groups gets on every rank.
std::vector<RankList> engine_groups(const Plan& plan);

class Engine {
 public:
  // bind_plan(plan, rank), then the model from `shards` and its KV caches. `comm` may be null
  // only when the plan's world size is 1.
  Engine(const Plan& plan, int64_t rank, Communicator* comm, const TensorShards& shards, EngineOptions options);
  ~Engine();

  // Runs the workload: `inputs` for all requests (the engine takes its own: prompts [batch,
  // prefill_tokens(plan)], and the images or audio clips of multimodal families), prefill (the
  // encoders and projectors run here), then new_tokens - 1 decode steps, so that every request
  // gets new_tokens tokens. With `forced` ([batch, new_tokens]) each step feeds forced tokens instead of its own
  // argmax (teacher forcing: the reference run of --verify follows the sharded run's tokens).
  // `max_steps` >= 0 stops earlier (a warm-up: prefill and one decode step).
  Generation generate(const EngineInputs& inputs, const at::Tensor* forced = nullptr, int64_t max_steps = -1);

  const PlanBinding& binding() const { return binding_; }

 private:
  at::Tensor run(const BoundCollective& c, at::Tensor x);  // timed as "collectives"
  at::Tensor run_collective(const BoundCollective& c, at::Tensor x);
  at::Tensor run_module(size_t i, const ModuleInputs& in, const StepPositions& step);  // timed by kind
  // One forward pass of the text stream; `prefill` also runs the other streams from `inputs`.
  at::Tensor forward(at::Tensor ids, const EngineInputs* prefill, int64_t first_position, int64_t tokens,
                     int64_t attend_len);

  const Plan& plan_;
  Communicator* comm_;
  EngineOptions options_;
  PlanBinding binding_;
  std::unique_ptr<FamilyModel> model_;
  int64_t capacity_ = 0;
  std::vector<double> seconds_by_kind_;  // as Generation::seconds_by_kind, for the current generate()
};

}  // namespace shardplan
