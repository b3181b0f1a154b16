// A plan bound for one rank: what that rank does around every module (the plan's collectives
// in order, the local slices of requests or items, the MoE exchange, the residual terms), derived
// from the plan alone and without libtorch, so that `planner check` refuses (with the spec's line)
// every plan the executor cannot run, and the executor runs exactly what was checked.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/error.h"
#include "planner/plan/plan.h"
#include "planner/plan/request_blocks.h"
#include "planner/spec/diagnostic.h"

namespace shardplan {

// A plan the executor cannot run: the message ends in "is not supported by the executor yet";
// `module` is the path of the module concerned ("" when none is), for the diagnostic's position.
// Exit code 1: `planner check` reports it as an error of the spec.
class BindError : public Error {
 public:
  BindError(const std::string& what, std::string module)
      : Error(1, what + " is not supported by the executor yet"), module_(std::move(module)) {}
  const std::string& module() const { return module_; }

 private:
  std::string module_;
};

// One of the plan's collectives as this rank runs it.
struct BoundCollective {
  CollectiveOp op = CollectiveOp::kAllReduce;
  int64_t dim = 0;            // all_gather / reduce_scatter: 0 requests (or items), -1 vocabulary
  RankGroup group;             // the group holding this rank
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
  // A MoE with a shared expert (ModulePlan::shared_mode): whether this rank adds the routed
  // experts' sum (false on ranks that are not group rank 0 over the shared expert's partial axes
  // the routed part is not partial over) and the shared expert's (likewise the other way).
  bool adds_routed = true;
  bool adds_shared = true;
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
  RankGroup exchange_group;
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
  // The rank computes every request all along the text stream (no batch axis, no data-parallel
  // text module, no expert exchange): requests may leave its batch without changing any collective.
  bool every_request_everywhere = false;
};

// Binds `plan` for `rank`. Checks (BindError, "... not supported by the executor yet"): every collective sits in front of a module, after an encoder's inner
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
std::vector<RankGroup> plan_groups(const Plan& plan);

// What `planner check` adds after the spec's own checks: the plan is bound for every rank, and
// a plan the executor cannot run is an error at the rule of the module concerned (the mesh when
// the defaults assigned it), e.g.
//   spec.yaml:14:5: error: the executor cannot run this plan: the local slice of requests in front
//   of model.layers.0.self_attn (...) is not supported by the executor yet
// Reported once (the first rank that fails).
void check_executable(const Plan& plan, Diagnostics& diags);

}  // namespace shardplan
