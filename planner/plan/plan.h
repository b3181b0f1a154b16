// The plan: what `planner plan` prints and the executor binds. Built from a checked spec:
// per-module modes, every tensor's layout and slices, the derived collectives in execution order,
// and memory and FLOPs per rank.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/graph/model_graph.h"
#include "planner/plan/layout.h"
#include "planner/plan/mesh.h"
#include "planner/plan/shard.h"
#include "planner/spec/spec.h"
#include "planner/spec/spec_check.h"

namespace shardplan {

struct ModulePlan {
  const Module* module = nullptr;
  ParallelMode mode = ParallelMode::kReplicate;
  std::vector<std::string> axes;
  int rule = -1;         // index into Spec::rules, -1: defaults
  int rule_line = 0;     // the rule's line in the spec (0: defaults)
  int64_t weight_bytes_max = 0;  // largest per-rank weight bytes of this module
  // The layout of its input stream as it computes (after any collective in front of it), and of
  // its output; filled by derive_collectives.
  ActivationLayout input_layout, output_layout;
  // Expert mode: for every expert, the group rank over `axes` of the ranks that hold it whole
  // (experts in contiguous blocks: 8 experts over a group of 4 -> [0, 0, 1, 1, 2, 2, 3, 3]).
  std::vector<int64_t> expert_owners;
  // The stream it reads besides its own, in prefill (cross-attention: the encoder states; the
  // first text module after llava's embedding: the image features, which it merges at the image
  // tokens); filled by derive_collectives.
  std::optional<Stream> side_stream;
  bool merges_side = false;
  // A MoE with a shared expert: its mode (replicate or tensor) and axes. Under tensor its output
  // is partial over shared_axes too (plan JSON "shared_expert").
  bool has_shared_expert = false;
  ParallelMode shared_mode = ParallelMode::kReplicate;
  std::vector<std::string> shared_axes;
};

enum class CollectiveOp { kAllReduce, kAllGather, kReduceScatter, kAllToAll };
const char* to_string(CollectiveOp op);

// Why a collective runs (plan JSON "role"):
//   kBetweenModules      in front of a module (or of the output), for the layout it needs;
//   kAfterEncoderBlock   inside a tensor-parallel encoder, reducing an inner block's partial output;
//   kMoeDispatch / kMoeCombine  the all_to_all pair around an expert-mode MoE with batch-split
//                        tokens: tokens to their experts' owners and back.
enum class CollectivePurpose { kBetweenModules, kAfterEncoderBlock, kMoeDispatch, kMoeCombine };
const char* to_string(CollectivePurpose purpose);  // "between_modules", "after_encoder_block", ...

// What a collective moves along (plan JSON "split"): the hidden dimension of partial sums
// (all_reduce), the requests (text rows, or tokens for an all_to_all), an encoder stream's items
// (images, audio clips) or the vocabulary of split logits.
enum class CollectiveSplit { kHidden, kRequests, kItems, kVocabulary };
const char* to_string(CollectiveSplit split);  // "hidden", "requests", "items", "vocabulary"

struct Collective {
  std::string after;     // the module (or encoder block) whose output it transforms
  std::string before;    // its consumer: the module (or block) in front of which it runs, or
                         // "output" (the final logits)
  CollectiveOp op = CollectiveOp::kAllReduce;
  std::vector<std::string> axes;
  std::vector<RankGroup> groups;
  int64_t bytes_prefill = 0;   // bytes each rank sends, prefill of the whole workload
  int64_t bytes_decode = 0;    // bytes each rank sends, one decode step
  CollectivePurpose purpose = CollectivePurpose::kBetweenModules;
  CollectiveSplit split = CollectiveSplit::kHidden;
  Stream stream = Stream::kText;
  // The stream's activation layout over every mesh axis before and after it (all_to_all: the
  // layout of the tokens around the MoE, the same on both sides).
  ActivationLayout from_layout, to_layout;
};

// "dispatch" / "combine" for the all_to_all pair, "" otherwise: the short word text and
// pictures put after the op (and the plan JSON's "purpose").
const char* short_purpose(CollectivePurpose purpose);

struct RankCost {
  int64_t weight_bytes = 0;
  int64_t kv_cache_bytes = 0;
  // The prefill's activations: a handful of [tokens, hidden] buffers of the rank's requests and
  // their logits (docs/plan.md).
  int64_t activation_bytes = 0;
  double flops_prefill = 0;
  double flops_decode = 0;
  // What a decode step reads of the weights: the text stream's modules without the embedding
  // tables (a step reads a row per request) and, of a MoE's experts, those the step's tokens are
  // expected to hit (all held ones when it runs dense: models/graph/moe_dense_rule.h).
  int64_t decode_weight_bytes = 0;
  int64_t decode_rows = 0;     // tokens of the rank's decode step (one per request it takes in)
  // The KV cache counted once per query head that reads it (kv_cache_bytes x q heads / KV heads of
  // each attention): decode attention's work, which grouped-query heads share the reads of.
  int64_t kv_query_bytes = 0;
  bool decode_eager = false;   // the executor decodes it without a CUDA graph (sparse MoE, expert exchange)
  // What the rank needs on its device: one memory model for check, plan and sweep.
  int64_t memory_bytes() const { return weight_bytes + kv_cache_bytes + activation_bytes; }
};

struct Plan {
  Plan() = default;
  Plan(const Plan&) = delete;  // it points into `checked` (see build_plan)
  Plan& operator=(const Plan&) = delete;

  CheckedSpec checked;              // spec, model graph, assignment (the plan points into it)
  Mesh mesh;
  std::vector<ModulePlan> modules;  // one per graph module, execution order
  std::vector<ParamPlan> params;    // every checkpoint tensor, in module order
  std::vector<Collective> comms;    // execution order of one forward pass
  std::vector<RankCost> ranks;      // indexed by rank
  // Every stream's layout where the forward pass starts (requests split over the batch axes) and
  // the logits' where it ends (whole, on the ranks that hold their requests).
  ActivationLayout input_layout, output_layout;

  const Spec& spec() const { return checked.spec; }
  const ModelGraph& graph() const { return checked.graph; }
  int64_t world_size() const { return mesh.world_size(); }
};

// NOTE: the plan keeps pointers into `checked.graph`; Plan is therefore built in place and
// handed around by reference or unique_ptr, never copied.
std::unique_ptr<Plan> build_plan(CheckedSpec checked);

}  // namespace shardplan
