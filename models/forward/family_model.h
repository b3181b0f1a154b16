// The one interface through which the runtime runs a model family's forward on one rank: the
// engine walks the plan's modules and calls FamilyModel::forward(i, ...) for module i of
// graph.modules, running the plan's collectives in between. A family implements it in
// models/<family>/<family>_forward.{h,cc} and adds its factory to the forward table
// (models/forward/forward_table.cc). The model owns its weights (the rank's shards) and its
// caches (KV caches, cross-attention k/v, ...); it never picks a collective: where a module needs
// communication in the middle of its forward (expert-mode MoE), it asks the runtime through the
// ModuleComm the engine passes.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/forward/tensor_shard.h"
#include "models/graph/model_graph.h"

namespace shardplan {

// The positions one step writes and the keys each of its tokens may read.
struct StepPositions {
  at::Tensor positions;   // [tokens] int64: cache rows this step writes (prompt: 0..T-1; decode: p)
  at::Tensor allowed;     // [tokens, attend_len] bool: query t may attend key position l
  int64_t attend_len = 0; // cache rows attention reads: T in prefill, the whole cache in decode
  // What `allowed` says, for kernels that take it as numbers instead of a mask: `causal`: the
  // step is a whole prompt from position 0 (query t reads keys 0..t); `window` > 0: a query reads
  // only the `window` keys up to itself (a sliding window).
  bool causal = false;
  int64_t window = 0;
  // A ragged batch (prompts of different lengths, left-padded to the longest): each request's first
  // cache row [requests] int64, on the device; `allowed` is then [requests, 1, tokens, attend_len]
  // (the padding masked out) and `causal` false. Undefined otherwise.
  at::Tensor first;
};

// What one module computes on. `main` is the module's own stream: token ids [requests, tokens]
// for an embedding, hidden states [requests, tokens, hidden] otherwise (an encoder's items for
// an encoder). `side` is a second input where the module has one (cross-attention: the encoder
// states; a merge of image features into the text stream: the features); undefined otherwise.
// Encoders and projectors run in prefill only (their outputs are cached where a module needs them
// again: cross-attention's k/v); `side` is given in prefill only.
struct ModuleInputs {
  at::Tensor main;
  at::Tensor side;
  // With a `side` merged into the text stream (llava: the image features, at the first module
  // after the embedding): the prompt's token ids of the module's requests [requests, tokens], which
  // say where the merged rows go. Undefined otherwise.
  at::Tensor ids;
  // A MoE with a shared expert whose two parts are partial over different axes: whether this rank
  // adds the routed experts' sum and the shared expert's (binding.h: ModuleBinding::adds_routed).
  bool adds_routed = true;
  bool adds_shared = true;
};

// Communication inside a module, bound by the runtime to the plan's collectives of that module
// (expert-mode MoE with batch-split tokens: the all_to_all pair with purpose "dispatch" and
// "combine"). The model says what it sends; the runtime runs the plan's op over the plan's group.
class ModuleComm {
 public:
  virtual ~ModuleComm() = default;
  // The dispatch/combine group: its size and this rank's index in it (group order).
  virtual int64_t group_size() const = 0;
  virtual int64_t group_index() const = 0;
  // For every expert of the module, the group member that computes it for this rank's tokens,
  // or -1 when no member of the group does (another rank of a partial group handles it).
  // Without a ModuleComm (tokens replicated over every expert axis) a rank computes the experts
  // it holds on every token routed to them, and the output is partial.
  virtual const std::vector<int64_t>& expert_member() const = 0;
  // Before a dispatch: row i of `counts` ([group size, c] int64, c of the model's choosing, e.g.
  // rows per expert) goes to member i; returns what every member sent here, in group order.
  virtual at::Tensor exchange_counts(const at::Tensor& counts) = 0;
  // The plan's all_to_all `purpose` ("dispatch" / "combine") of this module: rows along dim 0,
  // send_counts[i] rows go to member i, recv_counts[i] come from member i (group order).
  virtual at::Tensor all_to_all(const std::string& purpose, const at::Tensor& rows,
                                const std::vector<int64_t>& send_counts, const std::vector<int64_t>& recv_counts) = 0;
  // An encoder's inner block (graph path `child_path`, a child of the encoder module) produced
  // `x`: returns what the next block reads, after the plan's collectives whose `after` is that
  // block (tensor mode: the all_reduce of its partial sum); `x` itself where the plan has none.
  virtual at::Tensor after_block(const std::string& child_path, at::Tensor x) = 0;
};

class FamilyModel {
 public:
  virtual ~FamilyModel() = default;

  // Allocates the caches: requests[i] is the number of requests module i computes on (modules
  // without a cache ignore theirs), `capacity` the positions each request can hold.
  virtual void allocate(const std::vector<int64_t>& requests, int64_t capacity) = 0;

  // The positions of one text step (causal; windowed where the family has a sliding window).
  virtual StepPositions step_positions(int64_t first, int64_t tokens, int64_t attend_len,
                                       at::Device device) const = 0;

  // Module i of graph.modules on this rank's shards: embedding ids -> hidden; attention, mlp, moe
  // hidden -> hidden; lm_head hidden -> logits of the last position [requests, vocab held];
  // an encoder its items (pixels [items, channels, size, size], log-mel features [clips, mel bins,
  // frames]) -> its output states; a projector features -> text-width features; cross-attention
  // hidden -> hidden, reading `in.side` (the encoder states of its requests) in prefill and its
  // cached k/v afterwards. `step` means nothing to encoders and projectors.
  // `adds_whole_terms`: add the residual and row-parallel biases (false on the ranks of a partial
  // output that are not group rank 0 on every partial axis, so the all_reduce adds them once).
  // `comm` is the module's ModuleComm where the plan gives it communication inside (else null);
  // encoders always get one (their inner blocks call after_block). On CUDA a forward may write
  // its output into `in.main` (the residual stream, consumed: a GEMM accumulates into it).
  virtual at::Tensor forward(size_t i, const ModuleInputs& in, const StepPositions& step, bool adds_whole_terms,
                             ModuleComm* comm) = 0;

  // Whether a decode step of `tokens` rows per module (the fewest any module computes on) runs
  // without waiting for the host (no .item(), no host-sized shapes), so that the runtime may
  // capture it in a CUDA graph. Sparse MoE routing sizes its rows on the host (moe_runs_dense).
  virtual bool decode_capturable(int64_t tokens) const { return true; }

  // Whether prompts of different lengths may run as one batch, left-padded to the longest
  // (StepPositions::first): true where positions enter only as rotations (RoPE), whose attention
  // scores depend on position differences alone, so a request shifted right by its padding attends
  // exactly as it would alone. Absolute position embeddings (Whisper's decoder) would shift.
  virtual bool takes_ragged_prompts() const { return false; }

  // Whether the caches can drop finished requests (keep_rows): true where every cache is a
  // tensor of one row per request (the llama family's KV caches; the modules of its relatives
  // that are not llama's keep no per-request state across steps).
  virtual bool keeps_rows() const { return false; }
  // Keeps the requests at `rows` (int64 indices, on the device, into the rows running now; each
  // at most once) in every cache, moved to the front in place, so that later steps run
  // rows.size(0) requests and a CUDA graph captured at that count keeps its addresses.
  virtual void keep_rows(const at::Tensor& rows) { (void)rows; }
  // Every allocated row again (the next run of the whole batch).
  virtual void all_rows() {}
};

// Whether a family (ModelGraph::family) has a forward in the forward table.
bool family_has_forward(const std::string& family);

// The family's model from `graph` and the rank's `shards`. Throws ConfigError for a config the
// forward does not support (or a family without a forward), std::invalid_argument when a tensor
// of the graph the rank should hold is missing from `shards`.
std::unique_ptr<FamilyModel> make_family_model(const ModelGraph& graph, const TensorShards& shards);

}  // namespace shardplan
