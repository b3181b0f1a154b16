// Binding a plan to one rank and running prefill and decode (see engine.h).
#include "executor/runtime/engine.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <set>

#include "executor/runtime/run_error.h"

#if __has_include(<ATen/cuda/CUDAEvent.h>) && __has_include(<ATen/cuda/CUDAGraph.h>)
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#define SHARDPLAN_CUDA_EVENTS 1
#else
#define SHARDPLAN_CUDA_EVENTS 0
#endif

namespace shardplan {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

#if SHARDPLAN_CUDA_EVENTS
// Captures what `body` launches into `graph` (from `pool`, a pool shared by several graphs, or
// {0, 0} for the graph's own) and returns the seconds it took. NOTE: the capture runs on a side
// stream and records the kernels (and the plan's collectives: NCCL joins the capture) without
// running them, so nothing the body touches changes.
template <typename Body>
double capture_graph(at::cuda::CUDAGraph& graph, at::Device device, at::cuda::MempoolId_t pool, Body body) {
  const auto t0 = std::chrono::steady_clock::now();
  at::cuda::device_synchronize();
  {
    const c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool(false, device.index());
    const c10::cuda::CUDAStreamGuard guard(stream);
    graph.capture_begin(pool);
    body();
    graph.capture_end();
  }
  at::cuda::device_synchronize();
  return seconds_since(t0);
}
#endif

constexpr ModuleKind kTimedKinds[] = {ModuleKind::kEmbedding, ModuleKind::kAttention, ModuleKind::kCrossAttention,
                                      ModuleKind::kMlp,       ModuleKind::kMoe,       ModuleKind::kEncoder,
                                      ModuleKind::kProjector, ModuleKind::kLmHead};
constexpr size_t kCollectivesSlot = sizeof(kTimedKinds) / sizeof(kTimedKinds[0]);

size_t time_slot(ModuleKind kind) {
  for (size_t k = 0; k < kCollectivesSlot; ++k) {
    if (kTimedKinds[k] == kind) return k;
  }
  return kCollectivesSlot;
}

}  // namespace

// Times regions of a step by slot without waiting for the device inside the step (--profile): on
// CUDA each mark is an event recorded on the current stream, read when the step ends (flush); on
// the CPU the wall clock (every op has finished when it returns).
class Engine::Profiler {
 public:
  struct Mark {
#if SHARDPLAN_CUDA_EVENTS
    std::shared_ptr<at::cuda::CUDAEvent> event;
#endif
    std::chrono::steady_clock::time_point time;
  };

  Profiler(bool cuda, size_t slots) : cuda_(cuda), seconds_(slots, 0.0) {}

  Mark mark() const {
    Mark m;
#if SHARDPLAN_CUDA_EVENTS
    if (cuda_) {
      m.event = std::make_shared<at::cuda::CUDAEvent>(cudaEventDefault);
      m.event->record();
      return m;
    }
#endif
    m.time = std::chrono::steady_clock::now();
    return m;
  }
  // (to - from) counts for `slot` with `sign` (-1: a collective inside a module, not its time).
  void add(size_t slot, const Mark& from, const Mark& to, double sign = 1.0) {
    pending_.push_back({slot, from, to, sign});
  }
  // Reads the marks of the step (waits for the device once) and adds them up.
  void flush() {
    for (const Pending& p : pending_) {
      double seconds = 0;
#if SHARDPLAN_CUDA_EVENTS
      if (cuda_) {
        p.to.event->synchronize();
        seconds = p.from.event->elapsed_time(*p.to.event) / 1e3;
      } else
#endif
      {
        seconds = std::chrono::duration<double>(p.to.time - p.from.time).count();
      }
      seconds_[p.slot] += p.sign * seconds;
    }
    pending_.clear();
  }
  void reset() { std::fill(seconds_.begin(), seconds_.end(), 0.0); pending_.clear(); }
  const std::vector<double>& seconds() const { return seconds_; }

 private:
  struct Pending {
    size_t slot;
    Mark from, to;
    double sign;
  };
  bool cuda_;
  std::vector<double> seconds_;
  std::vector<Pending> pending_;
};

namespace {

// The runtime side of a module's ModuleComm: the plan's all_to_all pair of an expert-mode MoE and
// the collectives after an encoder's inner blocks, through the Communicator. With a profiler,
// their time counts as collectives and not as the module's (`module_slot`).
class BoundModuleComm : public ModuleComm {
 public:
  using Profiler = Engine::Profiler;
  BoundModuleComm(Communicator* comm, const ModuleBinding& m, Profiler* profiler, size_t module_slot)
      : comm_(comm), m_(m), profiler_(profiler), module_slot_(module_slot) {
    for (size_t j = 0; j < m.exchange_group.size(); ++j) {
      if (comm && m.exchange_group[j] == comm->rank()) index_ = static_cast<int64_t>(j);
    }
  }
  int64_t group_size() const override { return static_cast<int64_t>(m_.exchange_group.size()); }
  int64_t group_index() const override { return index_; }
  const std::vector<int64_t>& expert_member() const override { return m_.expert_member; }
  at::Tensor exchange_counts(const at::Tensor& counts) override {
    // NOTE: the counts ride on an all_to_all of the same group (one row per member), so the
    // dispatch's row counts are known on both sides before the rows move.
    const std::vector<int64_t> ones(m_.exchange_group.size(), 1);
    return timed_all_to_all(counts, ones, ones, "counts of " + m_.dispatch_what);
  }
  at::Tensor all_to_all(const std::string& purpose, const at::Tensor& rows, const std::vector<int64_t>& send_counts,
                        const std::vector<int64_t>& recv_counts) override {
    if (!m_.exchange || (purpose != "dispatch" && purpose != "combine")) {
      throw std::logic_error("the plan has no all_to_all '" + purpose + "' in this module");
    }
    return timed_all_to_all(rows, send_counts, recv_counts, purpose == "dispatch" ? m_.dispatch_what : m_.combine_what);
  }
  at::Tensor after_block(const std::string& child_path, at::Tensor x) override {
    const auto it = m_.after_block.find(child_path);
    if (it == m_.after_block.end()) return x;
    for (const BoundCollective& c : it->second) {
      if (c.group.size() <= 1) continue;
      x = x.contiguous();
      const Timed timed(profiler_, module_slot_);
      comm_->all_reduce(x, c.group, c.what);  // bind_plan admits all_reduces alone inside encoders
    }
    return x;
  }

 private:
  // A collective inside the module, timed as collectives (and taken off the module's time).
  struct Timed {
    Timed(Profiler* profiler, size_t module_slot) : profiler(profiler), module_slot(module_slot) {
      if (profiler) from = profiler->mark();
    }
    ~Timed() {
      if (!profiler) return;
      const Profiler::Mark to = profiler->mark();
      profiler->add(kCollectivesSlot, from, to);
      profiler->add(module_slot, from, to, -1.0);
    }
    Profiler* profiler;
    size_t module_slot;
    Profiler::Mark from;
  };

  at::Tensor timed_all_to_all(const at::Tensor& rows, const std::vector<int64_t>& send_counts,
                              const std::vector<int64_t>& recv_counts, const std::string& what) {
    const Timed timed(profiler_, module_slot_);
    return comm_->all_to_all(rows.contiguous(), send_counts, recv_counts, m_.exchange_group, what);
  }

  Communicator* comm_;
  const ModuleBinding& m_;
  Profiler* profiler_;
  size_t module_slot_;
  int64_t index_ = 0;
};

// Rows [begin, begin + count) of `x` along dim 0, after padding it with zero rows to `padded`
// (a data-parallel encoder's last share may be padding only).
at::Tensor take_rows(const RowSlice& slice, at::Tensor x) {
  if (!slice.active) return x;
  if (slice.padded > x.size(0)) {
    std::vector<int64_t> shape = x.sizes().vec();
    shape[0] = slice.padded - x.size(0);
    x = at::cat({x, at::zeros(shape, x.options())}, 0);
  }
  return x.narrow(0, slice.begin, slice.count);
}

}  // namespace

std::vector<std::string> engine_time_categories() {
  std::vector<std::string> names;
  for (ModuleKind kind : kTimedKinds) names.push_back(to_string(kind));
  names.push_back("collectives");
  return names;
}

bool engine_supports_family(const std::string& family) { return family_has_forward(family); }

PlanBinding bind_for_engine(const Plan& plan, int64_t rank) {
  if (!engine_supports_family(plan.graph().family)) {
    throw unsupported("model family '" + plan.graph().family + "' (model_type " + plan.graph().model_type + ")");
  }
  try {
    return bind_plan(plan, rank);
  } catch (const BindError& e) {
    throw RunError(RunError::Code::kUsage, e.what());
  }
}

Engine::Engine(const Plan& plan, int64_t rank, Communicator* comm, const TensorShards& shards,
               EngineOptions options)
    : plan_(plan), comm_(comm), options_(options), binding_(bind_for_engine(plan, rank)) {
  if (plan.world_size() > 1 && comm == nullptr) {
    throw std::logic_error("a world of " + std::to_string(plan.world_size()) + " ranks needs a communicator");
  }
  model_ = make_family_model(plan.graph(), shards);
  std::vector<int64_t> requests;
  for (const ModuleBinding& m : binding_.modules) requests.push_back(m.requests);
  const WorkloadSpec& w = plan.spec().workload;
  capacity_ = prefill_tokens(plan) + w.new_tokens;
  model_->allocate(requests, capacity_);
  if (options_.profile) profiler_ = std::make_unique<Profiler>(options_.device.is_cuda(), kCollectivesSlot + 1);

  // Finished requests may leave the batch where the rank computes every request all along the
  // text stream (the binding says so; the ranks, choosing the same tokens, drop the same rows at
  // the same step) and the family's caches can drop rows.
  rows_can_leave_ = binding_.every_request_everywhere && model_->keeps_rows();
}

// The decode step as a CUDA graph: static buffers for what changes between steps (the token ids,
// the position written, the keys each query may read) and the output the graph writes.
struct Engine::DecodeGraph {
#if SHARDPLAN_CUDA_EVENTS
  at::cuda::CUDAGraph graph;
#endif
  at::Tensor ids, positions, allowed, out;
  int64_t attend_len = 0;
};

// An encoder-stream module as a CUDA graph: its input copied into `in`, its output in `out`.
struct Engine::EncoderGraph {
#if SHARDPLAN_CUDA_EVENTS
  at::cuda::CUDAGraph graph;
#endif
  at::Tensor in, out;
};

Engine::~Engine() = default;

int64_t graph_batch_size(int64_t running, int64_t full, const std::vector<int64_t>& sizes) {
  if (!sizes.empty()) {
    const auto fits = std::lower_bound(sizes.begin(), sizes.end(), running);
    return fits == sizes.end() ? full : std::min(*fits, full);
  }
  int64_t size = 1;
  while (size < running) size = size < 8 ? 2 * size : size + 8;
  return std::min(size, full);
}

bool Engine::graphs_enabled(int64_t decode_rows) const {
  // The fewest rows a module computes on in a decode step (one token per request), and whether a
  // module exchanges rows whose counts go through the host (expert all_to_all).
  int64_t rows = decode_rows;
  for (const ModuleBinding& m : binding_.modules) {
    if (m.exchange) return false;
    if (m.stream == Stream::kText) rows = std::min(rows, m.request_range.count);
  }
  return SHARDPLAN_CUDA_EVENTS && options_.cuda_graphs && options_.device.is_cuda() &&
         model_->decode_capturable(rows) && (plan_.world_size() == 1 || comm_->capturable());
}

bool Engine::encoder_graphs_enabled() const {
  return SHARDPLAN_CUDA_EVENTS && options_.cuda_graphs && options_.device.is_cuda() && !profiler_ &&
         (plan_.world_size() == 1 || comm_->capturable());
}

at::Tensor Engine::run_encoder(size_t i, const ModuleInputs& in, const StepPositions& step) {
#if SHARDPLAN_CUDA_EVENTS
  if (!encoder_graphs_enabled() || in.main.numel() == 0) return run_module(i, in, step);
  const auto key = std::make_pair(i, in.main.sizes().vec());
  const auto found = encoder_graphs_.find(key);
  if (found != encoder_graphs_.end()) {
    found->second->in.copy_(in.main);
    found->second->graph.replay();
    return found->second->out;
  }
  // The first run at this item count is eager (cuBLAS, cuDNN and the allocator warm up), then
  // the module is captured; later prefills with the same count replay it. The encoders' graphs
  // share one memory pool: they run one after another, and each one's output is read before
  // the next prefill replays any of them.
  const at::Tensor out = run_module(i, in, step);
  if (encoder_pool_ == std::pair<unsigned long long, unsigned long long>{0, 0}) {
    encoder_pool_ = at::cuda::graph_pool_handle();
  }
  auto g = std::make_unique<EncoderGraph>();
  g->in = in.main.clone();
  ModuleInputs captured = in;
  captured.main = g->in;
  encoder_capture_s_ += capture_graph(g->graph, options_.device, encoder_pool_,
                                      [&] { g->out = run_module(i, captured, step); });
  encoder_graphs_[key] = std::move(g);
  return out;
#else
  return run_module(i, in, step);
#endif
}

StepPositions Engine::step_at(int64_t first, int64_t tokens, int64_t attend_len) const {
  StepPositions s = model_->step_positions(first, tokens, attend_len, options_.device);
  if (!first_row_.defined()) return s;
  // A ragged batch: the model's mask without each request's left padding, [batch, 1, tokens,
  // attend_len]. A padding row still reads itself, so its keys and values stay finite (a row no
  // query reads meets probability 0 in probs @ v, and 0 * NaN would be NaN).
  const at::Tensor col = at::arange(attend_len, at::TensorOptions().dtype(at::kLong).device(options_.device));
  const at::Tensor own = col.unsqueeze(0) == s.positions.unsqueeze(1);           // [tokens, L]
  const at::Tensor past_padding = col.unsqueeze(0) >= first_row_.unsqueeze(1);   // [batch, L]
  s.allowed = (s.allowed.unsqueeze(0) & (past_padding.unsqueeze(1) | own.unsqueeze(0))).unsqueeze(1);
  s.first = first_row_;
  s.causal = false;
  return s;
}

double Engine::capture_decode(const at::Tensor& ids, int64_t position) {
#if SHARDPLAN_CUDA_EVENTS
  auto g = std::make_unique<DecodeGraph>();
  const StepPositions step = step_at(position, 1, capacity_);
  g->ids = ids.clone();
  g->positions = step.positions.clone();
  g->allowed = step.allowed.clone();
  g->attend_len = step.attend_len;
  const int64_t rows = ids.size(0);
  StepPositions captured = step;
  captured.positions = g->positions;
  captured.allowed = g->allowed;  // (a ragged batch's first rows are the engine's, fixed per run)
  // NOTE: the KV caches are untouched by the capture (nothing runs).
  const double seconds =
      capture_graph(g->graph, options_.device, {0, 0}, [&] { g->out = forward(g->ids, nullptr, captured); });
  decode_graphs_[rows] = std::move(g);
  return seconds;
#else
  (void)ids;
  (void)position;
  throw std::logic_error("this build has no CUDA graphs");
#endif
}

double Engine::capture_leaving_batches() {
  const int64_t full = binding_.output_requests.count;
  if (!rows_can_leave_ || options_.keep_logits || decode_graphs_.count(full) == 0 || profiler_) return 0;
  const WorkloadSpec& w = plan_.spec().workload;
  std::set<int64_t, std::greater<int64_t>> sizes;  // largest first: each step keeps a prefix of the last
  for (int64_t running = 1; running < full; ++running) sizes.insert(graph_batch_size(running, full, w.graph_batch_sizes));
  sizes.erase(full);
  const int64_t position = prefill_tokens(plan_);  // the first decode step's
  double seconds = 0;
  for (const int64_t rows : sizes) {
    if (decode_graphs_.count(rows) > 0 || !graphs_enabled(rows)) continue;
    model_->keep_rows(at::arange(rows, at::TensorOptions().dtype(at::kLong).device(options_.device)));
    rows_shrunk_ = true;
    if (first_row_.defined()) first_row_ = first_all_.narrow(0, 0, rows);
    const at::Tensor ids = at::zeros({rows, 1}, at::TensorOptions().dtype(at::kLong).device(options_.device));
    forward(ids, nullptr, step_at(position, 1, capacity_));  // its eager warm-up
    seconds += capture_decode(ids, position);
  }
  return seconds;
}

at::Tensor Engine::replay_decode(DecodeGraph& g, const at::Tensor& ids, int64_t position) {
#if SHARDPLAN_CUDA_EVENTS
  const StepPositions step = step_at(position, 1, capacity_);
  g.ids.copy_(ids);
  g.positions.copy_(step.positions);
  g.allowed.copy_(step.allowed);
  g.graph.replay();
  return g.out;
#else
  (void)g;
  (void)ids;
  (void)position;
  throw std::logic_error("this build has no CUDA graphs");
#endif
}

at::Tensor Engine::run(const BoundCollective& c, at::Tensor x) {
  if (c.group.size() <= 1) return c.keep_rows >= 0 ? x.narrow(0, 0, c.keep_rows) : x;
  x = x.contiguous();
  std::optional<Profiler::Mark> from;
  if (profiler_) from = profiler_->mark();
  x = run_collective(c, x);
  if (c.keep_rows >= 0) x = x.narrow(0, 0, c.keep_rows);
  if (profiler_) profiler_->add(kCollectivesSlot, *from, profiler_->mark());
  return x;
}

at::Tensor Engine::run_collective(const BoundCollective& c, at::Tensor x) {
  const int64_t dim = c.dim < 0 ? x.dim() + c.dim : c.dim;
  switch (c.op) {
    case CollectiveOp::kAllReduce: comm_->all_reduce(x, c.group, c.what); return x;
    case CollectiveOp::kAllGather: return comm_->all_gather(x, dim, c.group, c.what);
    case CollectiveOp::kReduceScatter: return comm_->reduce_scatter(x, dim, c.group, c.what);
    case CollectiveOp::kAllToAll: break;
  }
  throw std::logic_error("unbound collective " + c.what);
}

at::Tensor Engine::run_module(size_t i, const ModuleInputs& in, const StepPositions& step) {
  const ModuleBinding& m = binding_.modules[i];
  const size_t slot = time_slot(plan_.modules[i].module->kind);
  std::optional<Profiler::Mark> from;
  if (profiler_) from = profiler_->mark();
  ModuleInputs bound = in;
  bound.adds_routed = m.adds_routed;
  bound.adds_shared = m.adds_shared;
  at::Tensor out;
  if (m.exchange || !m.after_block.empty()) {
    BoundModuleComm comm(comm_, m, profiler_.get(), slot);
    out = model_->forward(i, bound, step, m.adds_whole_terms, &comm);
  } else {
    out = model_->forward(i, bound, step, m.adds_whole_terms, nullptr);
  }
  if (profiler_) profiler_->add(slot, *from, profiler_->mark());
  return out;
}

at::Tensor Engine::forward(at::Tensor x, const EngineInputs* prefill, const StepPositions& step) {
  // The encoder streams, prefill only: the items of the rank's requests.
  std::map<Stream, at::Tensor> streams;
  if (prefill) {
    const RequestRange& r = binding_.input_requests;
    const int64_t images = plan_.spec().workload.images_per_request;
    if (prefill->pixels.defined()) {
      streams[Stream::kImage] =
          prefill->pixels.narrow(0, r.begin * images, r.count * images).to(options_.device, options_.dtype);
    }
    if (prefill->audio.defined()) {
      streams[Stream::kAudio] = prefill->audio.narrow(0, r.begin, r.count).to(options_.device, options_.dtype);
    }
  }
  for (size_t i = 0; i < binding_.modules.size(); ++i) {
    const ModuleBinding& m = binding_.modules[i];
    ModuleInputs in;
    if (m.stream != Stream::kText) {
      if (!prefill) continue;
      at::Tensor& items = streams.at(m.stream);
      for (const BoundCollective& c : m.before) items = run(c, items);
      in.main = take_rows(m.slice, items);
      items = run_encoder(i, in, step);
      continue;
    }
    for (const BoundCollective& c : m.before) x = run(c, x);
    x = take_rows(m.slice, x);
    in.main = x;
    if (prefill && m.reads_side) {
      at::Tensor& side = streams.at(m.side_stream);
      for (const BoundCollective& c : m.side_before) side = run(c, side);
      side = take_rows(m.side_slice, side);
      in.side = side;
      if (m.merges_side) {
        in.ids = prefill->prompts.narrow(0, m.request_range.begin, m.request_range.count).to(options_.device);
      }
    }
    if (step.first.defined()) {
      // A ragged batch: the masks and first rows of the requests this module computes on.
      // (When finished requests have left, every module computes the rows still running.)
      StepPositions own = step;
      if (!rows_shrunk_) {
        own.first = step.first.narrow(0, m.request_range.begin, m.request_range.count);
        own.allowed = step.allowed.narrow(0, m.request_range.begin, m.request_range.count);
      }
      x = run_module(i, in, own);
    } else {
      x = run_module(i, in, step);
    }
  }
  for (const BoundCollective& c : binding_.output) x = run(c, x);
  return x;
}

Generation Engine::generate(const EngineInputs& inputs, const at::Tensor* forced, int64_t max_steps,
                            TokenChooser* chooser, Progress* progress) {
  const WorkloadSpec& w = plan_.spec().workload;
  const int64_t prompt = prefill_tokens(plan_);
  if (inputs.prompts.size(1) != prompt) {
    throw std::logic_error("prompts of " + std::to_string(inputs.prompts.size(1)) + " tokens for a prefill of " +
                           std::to_string(prompt));
  }
  if (inputs.first.defined() && !model_->takes_ragged_prompts()) {
    throw unsupported("prompts of different lengths in one batch for " + plan_.graph().model_type +
                      " (absolute positions; give every request the same prompt length)");
  }
  // The whole batch again where requests left it in the last run.
  if (rows_shrunk_) {
    model_->all_rows();
    first_row_ = first_all_;
    rows_shrunk_ = false;
  }
  // A ragged batch's first rows live in one device buffer for the engine's life: a captured decode
  // graph reads them from there. A change of raggedness or batch drops the graphs.
  const at::Tensor first_rows = inputs.first.defined() ? inputs.first.to(at::kLong) : at::Tensor();
  if (first_rows.defined() != first_row_.defined() ||
      (first_rows.defined() && first_rows.sizes() != first_row_.sizes())) {
    decode_graphs_.clear();
    first_all_ = first_rows.defined() ? first_rows.to(options_.device) : at::Tensor();
    first_row_ = first_all_;
  } else if (first_rows.defined()) {
    first_row_.copy_(first_rows);
  }
  int64_t steps = max_steps >= 0 ? std::min(max_steps, w.new_tokens) : w.new_tokens;
  if (forced) steps = std::min(steps, forced->size(1));  // a run that ended early is followed as far as it went
  const auto t0 = std::chrono::steady_clock::now();
  encoder_capture_s_ = 0;
  Generation g;
  g.requests = binding_.output_requests;
  if (profiler_) profiler_->reset();
  const auto profiled = [&] { return profiler_ ? profiler_->seconds() : std::vector<double>(); };
  std::vector<at::Tensor> tokens, logits;

  at::Tensor ids =
      inputs.prompts.narrow(0, binding_.input_requests.begin, binding_.input_requests.count).to(options_.device);
  if (steps == 0) {
    // new_tokens: 0 runs prefill alone (timed as the duration); no tokens, no logits.
    forward(ids, &inputs, step_at(0, prompt, prompt)).to(at::kCPU);
    g.encoder_capture_s = encoder_capture_s_;
    g.last_token_s = seconds_since(t0);
    if (profiler_) profiler_->flush();
    g.seconds_by_kind = profiled();
    g.tokens = at::zeros({g.requests.count, 0}, at::TensorOptions().dtype(at::kLong));
    if (options_.keep_logits) g.logits = at::zeros({0, g.requests.count, plan_.graph().vocab});
    return g;
  }
  // rows[i]: the held request that row i of this step computes (-1: a padding row of a CUDA
  // graph's batch size); token_rows: each step's rows, to put the tokens back in request order.
  std::vector<int64_t> rows(static_cast<size_t>(g.requests.count));
  std::iota(rows.begin(), rows.end(), 0);
  std::vector<std::vector<int64_t>> token_rows;
  bool padded = false;  // a row was made padding in place (no smaller graph batch to move down to)
  const bool rows_may_leave = rows_can_leave_ && chooser && !forced && !options_.keep_logits;
  for (int64_t s = 0; s < steps; ++s) {
    const bool prefill = s == 0;
    // NOTE: the graphs go by the rows the step computes (ids); `rows` are the requests whose
    // tokens come out, fewer where a batch axis splits them and the tokens are exchanged.
    const int64_t batch_rows = static_cast<int64_t>(rows.size());
    const bool graphed = !prefill && !profiler_ && graphs_enabled(ids.size(0));
    const auto graph = decode_graphs_.find(ids.size(0));
    at::Tensor out;
    if (prefill) {
      out = forward(ids, &inputs, step_at(0, prompt, prompt));
      g.encoder_capture_s = encoder_capture_s_;
    } else if (graphed && graph != decode_graphs_.end()) {
      out = replay_decode(*graph->second, ids, prompt + s - 1);
    } else {
      out = forward(ids, nullptr, step_at(prompt + s - 1, 1, capacity_));
      // The first decode step at a batch size runs eagerly (its warm-up); every later one replays its graph.
      if (graphed) {
        out = out.clone();  // NOTE: the capture reuses memory the eager step's output may sit in
        g.graph_capture_s += capture_decode(ids, prompt + s - 1);
      }
    }
    if (!prefill) g.decode_rows.push_back(ids.size(0));
    const at::Tensor whole = out.to(at::kFloat);
    at::Tensor next = chooser ? chooser->choose(whole, s, rows) : whole.argmax(-1);
    // NOTE: the tokens stay on the device until the end; only the first step waits for them (the
    // time to the first token). Nothing else waits for the device between steps.
    tokens.push_back(prefill ? next.to(at::kCPU) : next);
    token_rows.push_back(rows);
    if (options_.keep_logits) logits.push_back(whole.to(at::kCPU));
    if (prefill) g.first_token_s = seconds_since(t0);
    if (profiler_) profiler_->flush();
    if (progress) progress->update(s + 1);
    if (s + 1 == steps) break;
    if (chooser && binding_.output_requests.count == w.batch && chooser->finished()) {
      if (progress) progress->done();
      break;
    }
    if (rows_may_leave) {
      // Finished requests leave: the running ones move to the front of the caches, padded with
      // finished rows up to the next CUDA graph's batch size where graphs run.
      std::vector<int64_t> keep, spare;
      for (int64_t i = 0; i < batch_rows; ++i) {
        const int64_t held = rows[static_cast<size_t>(i)];
        (held >= 0 && !chooser->request_finished(held) ? keep : spare).push_back(i);
      }
      const int64_t running = static_cast<int64_t>(keep.size());
      const bool graphed_next = graphs_enabled(running) && !profiler_;
      const int64_t target = graphed_next ? graph_batch_size(running, batch_rows, w.graph_batch_sizes) : running;
      if (running > 0 && target < batch_rows) {
        std::vector<int64_t> taken = keep;
        taken.insert(taken.end(), spare.begin(), spare.begin() + (target - running));
        const at::Tensor index = at::tensor(taken, at::TensorOptions().dtype(at::kLong)).to(options_.device);
        model_->keep_rows(index);
        if (first_row_.defined()) {
          first_all_.narrow(0, 0, target).copy_(first_row_.index_select(0, index));
          first_row_ = first_all_.narrow(0, 0, target);
        }
        next = next.index_select(0, index);
        std::vector<int64_t> moved(static_cast<size_t>(target), -1);
        for (int64_t j = 0; j < running; ++j) moved[static_cast<size_t>(j)] = rows[static_cast<size_t>(taken[static_cast<size_t>(j)])];
        rows = std::move(moved);
        rows_shrunk_ = true;
      } else if (running < batch_rows) {
        // The graph's batch size is still this one (or graphs are off and nothing left): the
        // finished requests' rows stay as padding, and their tokens are thrown away.
        for (const int64_t i : spare) rows[static_cast<size_t>(i)] = -1;
        padded = true;
      }
    }
    if (forced) {
      ids = forced->select(1, s).narrow(0, binding_.input_requests.begin, binding_.input_requests.count).to(options_.device);
    } else {
      ids = binding_.exchange_tokens ? run(binding_.token_exchange, next) : next;
    }
    ids = ids.unsqueeze(1);
  }
  for (at::Tensor& t : tokens) t = t.to(at::kCPU);  // waits for the last step
  g.last_token_s = seconds_since(t0);
  g.seconds_by_kind = profiled();
  if (!rows_shrunk_ && !padded) {
    g.tokens = at::stack(tokens, 1);
  } else {
    // Each step's tokens back in request order; a request that left has 0 after its end.
    g.tokens = at::zeros({g.requests.count, static_cast<int64_t>(tokens.size())}, at::TensorOptions().dtype(at::kLong));
    auto out = g.tokens.accessor<int64_t, 2>();
    for (size_t t = 0; t < tokens.size(); ++t) {
      const auto step_tokens = tokens[t].accessor<int64_t, 1>();
      for (size_t i = 0; i < token_rows[t].size(); ++i) {
        if (token_rows[t][i] >= 0) out[token_rows[t][i]][static_cast<int64_t>(t)] = step_tokens[static_cast<int64_t>(i)];
      }
    }
  }
  if (options_.keep_logits) g.logits = at::stack(logits, 0);
  return g;
}

}  // namespace shardplan
