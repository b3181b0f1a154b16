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
#include <utility>
#include <vector>

#include "base/progress.h"
#include "executor/comm/communicator.h"
#include "executor/runtime/workload.h"
#include "models/forward/family_model.h"
#include "models/forward/tensor_shard.h"
#include "planner/plan/binding.h"
#include "planner/plan/plan.h"

namespace shardplan {

struct EngineOptions {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
  bool keep_logits = false;  // keep each step's whole logits of the rank's requests (--verify)
  // Time every module and collective by kind (--profile): CUDA events on the device (read once
  // per step), the wall clock on the CPU. Off: no timing inside a step, so nothing waits for the
  // device between modules.
  bool profile = false;
  // Capture the decode step in a CUDA graph once (after its first eager run) and replay it for
  // every later step, the plan's collectives inside it (CUDA only; a family whose decode waits
  // for the host, MoE routing, runs eagerly). Likewise each encoder-stream module (vision tower,
  // projector, audio encoder) per count of items it encodes on the rank: captured after its
  // first eager run (the warm-up's prefill), replayed by every later prefill with that count.
  bool cuda_graphs = true;
};

// What one rank generated, for the requests it holds at the end of the forward pass.
struct Generation {
  RequestRange requests;
  at::Tensor tokens;          // [requests, new_tokens] int64, CPU
  at::Tensor logits;          // [new_tokens, requests, vocab] float32, CPU (keep_logits only)
  double first_token_s = 0;   // from the start of prefill to the first tokens on this rank
  double graph_capture_s = 0; // the decode step's CUDA graph captures in this call (0: none)
  double encoder_capture_s = 0; // the encoders' CUDA graph captures in this call (0: none)
  double last_token_s = 0;    // ... to the last tokens
  // The rows each decode step ran (requests still running, padded up to a CUDA graph's batch
  // size): falls as requests finish and leave the batch (Engine::generate).
  std::vector<int64_t> decode_rows;
  // With EngineOptions::profile, seconds spent per module kind (engine_time_categories() order:
  // the module kinds, then "collectives": the plan's collectives, those inside a module included,
  // and the exchange of sampled tokens); empty otherwise.
  std::vector<double> seconds_by_kind;
};

// How a step's tokens are chosen from its logits when not greedy (sampling: executor/runtime/
// sampling.h). Every rank holding a request must choose the same token for it from the same logits.
class TokenChooser {
 public:
  virtual ~TokenChooser() = default;
  // logits [rows, vocab] float32 on the device, row i for the held request rows[i] (its index
  // among the requests the rank holds at the end; -1: a padding row, any token will do); returns
  // their next tokens [rows] int64 on the same device. `step` 0 is the prefill's token.
  virtual at::Tensor choose(const at::Tensor& logits, int64_t step, const std::vector<int64_t>& rows) = 0;
  // Whether every request the rank chose for has finished (after choose). Where every rank holds
  // every request at the end (the same logits, so the same answer on every rank), the engine then
  // stops: no rank goes on alone. Elsewhere the run goes to its last step.
  virtual bool finished() const { return false; }
  // Whether held request `held` has finished (after choose): the engine may drop it from the batch.
  virtual bool request_finished(int64_t held) const {
    (void)held;
    return false;
  }
};

// The names of Generation::seconds_by_kind, in order: every ModuleKind's name, then "collectives".
std::vector<std::string> engine_time_categories();

// The batch a CUDA-graph decode step of `running` requests runs at, of a batch of `full`: the
// smallest of `sizes` (ascending; the spec's workload.graph_batch_sizes) that holds them, by
// default of 1, 2, 4, 8 and the multiples of 8 (vLLM's default capture sizes); `full` where none
// does, and never more than `full` (a batch starts at its own size).
int64_t graph_batch_size(int64_t running, int64_t full, const std::vector<int64_t>& sizes = {});

// The model families the engine runs (those with a forward: models/forward/family_model.h).
bool engine_supports_family(const std::string& family);

// bind_plan for the engine: the family must have a forward, and a BindError becomes a RunError
// (kUsage, exit 2) with the same message.
PlanBinding bind_for_engine(const Plan& plan, int64_t rank);

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
  // `max_steps` >= 0 stops earlier (a warm-up: prefill and one decode step). `chooser` picks the
  // tokens (null: greedy, the argmax). With inputs.first (a ragged batch, left-padded) every
  // request attends past its padding only (families with rotary positions; others refuse it).
  // `progress` (of the steps, prefill first) is updated after each step.
  // Requests the chooser says have finished leave the batch (their cache rows are dropped, the
  // others move to the front) where every module of the text stream computes every request and
  // the family's caches allow it (FamilyModel::keeps_rows), unless logits are kept or tokens
  // forced; with CUDA graphs the batch moves down to the smallest graph batch size that holds the
  // requests still running (graph_batch_size with the spec's workload.graph_batch_sizes), one graph
  // per size, captured by capture_leaving_batches at start-up (else when first reached).
  Generation generate(const EngineInputs& inputs, const at::Tensor* forced = nullptr, int64_t max_steps = -1,
                      TokenChooser* chooser = nullptr, Progress* progress = nullptr);

  // After a warm-up generate (its prefill and one decode step), captures the decode graph of every
  // smaller batch size the batch can step down to as requests leave (graph_batch_size of 1 to
  // batch - 1 running requests), each after one eager step at that size, so that the run itself
  // captures nothing. The caches' contents are the warm-up's (the next generate starts over).
  // Returns the seconds the captures took; 0 where requests cannot leave or graphs do not run.
  double capture_leaving_batches();

  const PlanBinding& binding() const { return binding_; }
  // Whether decode steps replay a captured CUDA graph (after the first decode step ran).
  bool uses_cuda_graphs() const { return !decode_graphs_.empty(); }
  // The encoder graphs captured so far: one per (encoder-stream module, item count).
  size_t encoder_graph_count() const { return encoder_graphs_.size(); }

  class Profiler;  // --profile's timer (engine.cc)

 private:
  at::Tensor run(const BoundCollective& c, at::Tensor x);  // timed as "collectives"
  at::Tensor run_collective(const BoundCollective& c, at::Tensor x);
  at::Tensor run_module(size_t i, const ModuleInputs& in, const StepPositions& step);  // timed by kind
  // One forward pass of the text stream; `prefill` also runs the other streams from `inputs`.
  at::Tensor forward(at::Tensor ids, const EngineInputs* prefill, const StepPositions& step);
  // The model's step positions, with a ragged batch's padding masked out (first_row_).
  StepPositions step_at(int64_t first, int64_t tokens, int64_t attend_len) const;

  const Plan& plan_;
  Communicator* comm_;
  EngineOptions options_;
  PlanBinding binding_;
  std::unique_ptr<FamilyModel> model_;
  int64_t capacity_ = 0;
  std::unique_ptr<Profiler> profiler_;  // with options_.profile only
  at::Tensor first_row_;  // a ragged batch's first row per request [batch] on the device; undefined: none

  struct DecodeGraph;  // engine.cc
  // Whether a decode step of `rows` requests runs as a CUDA graph (options, device and family allow it).
  bool graphs_enabled(int64_t rows) const;
  // Captures the decode step of ids.size(0) rows at `position` into decode_graphs_; returns the
  // seconds it took.
  double capture_decode(const at::Tensor& ids, int64_t position);
  at::Tensor replay_decode(DecodeGraph& graph, const at::Tensor& ids, int64_t position);
  std::map<int64_t, std::unique_ptr<DecodeGraph>> decode_graphs_;  // by rows
  // An encoder-stream module (prefill only) through its CUDA graph for in.main's shape: replayed
  // when captured, else run eagerly and captured (the seconds added to encoder_capture_s_).
  struct EncoderGraph;  // engine.cc
  bool encoder_graphs_enabled() const;
  at::Tensor run_encoder(size_t i, const ModuleInputs& in, const StepPositions& step);
  std::map<std::pair<size_t, std::vector<int64_t>>, std::unique_ptr<EncoderGraph>> encoder_graphs_;
  double encoder_capture_s_ = 0;  // captures since generate() began
  std::pair<unsigned long long, unsigned long long> encoder_pool_{0, 0};  // their memory pool (MempoolId_t)
  // Whether finished requests may leave the batch (see generate); rows_shrunk_: some have left in
  // this run, so the caches and first rows are views of their first rows.
  bool rows_can_leave_ = false;
  bool rows_shrunk_ = false;
  at::Tensor first_all_;  // first_row_'s buffer, as the ragged batch came
};

}  // namespace shardplan
