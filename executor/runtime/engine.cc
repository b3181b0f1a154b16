// Binding a plan to one rank and running prefill and decode (see engine.h).
#include "executor/runtime/engine.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <set>

#include "executor/runtime/run_error.h"
#include "models/llava/llava_forward.h"  // encoder_item_slice

namespace shardplan {
namespace {

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::string axes_list(const std::vector<std::string>& axes) {
  std::string out;
  for (const auto& a : axes) out += (out.empty() ? "" : ",") + a;
  return "[" + out + "]";
}

const RankGroup& group_holding(const std::vector<RankGroup>& groups, int64_t rank) {
  for (const RankGroup& g : groups) {
    if (std::find(g.begin(), g.end(), rank) != g.end()) return g;
  }
  throw std::logic_error("rank " + std::to_string(rank) + " is in none of the collective's groups");
}

// The axes (mesh order) on which the requests are split at the end but not at the start: the
// sampled tokens are gathered over them before the next step.
std::vector<std::string> token_exchange_axes(const Plan& plan, const ActivationLayout& out) {
  const ActivationLayout& in = plan.input_layout;
  std::vector<std::string> axes;
  for (size_t x = 0; x < in.axes.size(); ++x) {
    if (out.axes[x] == AxisState::kBatchSplit && in.axes[x] != AxisState::kBatchSplit) {
      axes.push_back(plan.mesh.axes()[x].name);
    }
  }
  return axes;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The all_to_all pair of module i (an expert-mode MoE with batch-split tokens), if the plan has
// one: its group and, for every expert, the member that holds it (the plan's expert owners: the
// member whose group rank over the module's axes owns the expert). Checks: dispatch sits in front
// of the module and combine after it, over the same groups.
void bind_exchange(const Plan& plan, size_t i, int64_t rank, ModuleBinding& m) {
  const ModulePlan& mp = plan.modules[i];
  const std::string& path = mp.module->path;
  const Collective* dispatch = nullptr;
  const Collective* combine = nullptr;
  for (const Collective& c : plan.comms) {
    if (c.op != CollectiveOp::kAllToAll) continue;
    if (c.purpose == CollectivePurpose::kMoeDispatch && c.before == path) dispatch = &c;
    if (c.purpose == CollectivePurpose::kMoeCombine && c.after == path) combine = &c;
  }
  if (!dispatch && !combine) return;
  if (!dispatch || !combine || dispatch->groups != combine->groups || mp.mode != ParallelMode::kExpert) {
    throw unsupported("all_to_all around " + path + " without its dispatch / combine pair");
  }
  const RankGroup& group = group_holding(dispatch->groups, rank);
  // NOTE: a group of one moves nothing: the rank computes the experts it holds, as with
  // replicated tokens (and a world of one has no communicator).
  if (group.size() <= 1) return;
  m.exchange = true;
  m.exchange_group = group;
  m.dispatch_what = "all_to_all" + axes_list(dispatch->axes) + " dispatch in " + path;
  m.combine_what = "all_to_all" + axes_list(combine->axes) + " combine in " + path;
  // NOTE: the group's members differ on the exchange axes, which are among the module's axes, so
  // at most one member has an expert's owner group rank; none: a rank of its partial group has it.
  m.expert_member.assign(mp.expert_owners.size(), -1);
  for (size_t j = 0; j < m.exchange_group.size(); ++j) {
    const int64_t member_rank = plan.mesh.group_rank(m.exchange_group[j], mp.axes);
    for (size_t e = 0; e < mp.expert_owners.size(); ++e) {
      if (mp.expert_owners[e] == member_rank) m.expert_member[e] = static_cast<int64_t>(j);
    }
  }
}

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

// NOTE: CUDA runs asynchronously; copying one element to the host waits for the work queued so
// far, so that a module's time is its own. On the CPU every op has finished when it returns.
void wait_for(const at::Tensor& x) {
  if (x.defined() && x.is_cuda() && x.numel() > 0) x.reshape({-1}).narrow(0, 0, 1).to(at::kCPU);
}

// The runtime side of a module's ModuleComm: the plan's all_to_all pair of an expert-mode MoE and
// the collectives after an encoder's inner blocks, through the Communicator. The time they take is
// added to `collective_s`.
class BoundModuleComm : public ModuleComm {
 public:
  BoundModuleComm(Communicator* comm, const ModuleBinding& m, double& collective_s)
      : comm_(comm), m_(m), collective_s_(collective_s) {
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
      wait_for(x);
      const auto t0 = std::chrono::steady_clock::now();
      comm_->all_reduce(x, c.group, c.what);  // bind_plan admits all_reduces alone inside encoders
      wait_for(x);
      collective_s_ += seconds_since(t0);
    }
    return x;
  }

 private:
  at::Tensor timed_all_to_all(const at::Tensor& rows, const std::vector<int64_t>& send_counts,
                              const std::vector<int64_t>& recv_counts, const std::string& what) {
    wait_for(rows);
    const auto t0 = std::chrono::steady_clock::now();
    at::Tensor out = comm_->all_to_all(rows.contiguous(), send_counts, recv_counts, m_.exchange_group, what);
    wait_for(out);
    collective_s_ += seconds_since(t0);
    return out;
  }

  Communicator* comm_;
  const ModuleBinding& m_;
  double& collective_s_;
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

RequestRange output_requests(const Plan& plan, int64_t rank) {
  return requests_held(plan.mesh, plan.output_layout, rank, plan.spec().workload.batch);
}

std::vector<RankList> engine_groups(const Plan& plan) {
  std::set<RankList> groups;
  for (const Collective& c : plan.comms) {
    for (const RankGroup& g : c.groups) groups.insert(g);
  }
  if (!plan.modules.empty()) {
    const std::vector<std::string> axes = token_exchange_axes(plan, plan.output_layout);
    if (!axes.empty()) {
      for (const RankGroup& g : plan.mesh.groups(axes)) groups.insert(g);
    }
  }
  RankList world;
  for (int64_t r = 0; r < plan.world_size(); ++r) world.push_back(r);
  groups.insert(world);
  return {groups.begin(), groups.end()};
}

namespace {

// How a rank holds one stream's rows while the plan is bound: the rows of `requests` (text: one
// per request; image: images_per_request per request, in request order; audio: one clip each),
// or a data-parallel encoder's share of them.
struct StreamHold {
  ActivationLayout layout;
  RequestRange requests;
  int64_t rows_per_request = 1;
  // Split by a data-parallel encoder (or projector) over `split_axes`: the rank holds rows
  // [split.begin, +split.count) of the requests' rows padded to split.padded.
  std::vector<std::string> split_axes;
  ItemSlice split;

  int64_t whole_rows() const { return requests.count * rows_per_request; }
};

class PlanBinder {
 public:
  PlanBinder(const Plan& plan, int64_t rank)
      : plan_(plan), mesh_(plan.mesh), rank_(rank), batch_(plan.spec().workload.batch) {}

  StreamHold start(Stream s) const {
    StreamHold h;
    h.layout = plan_.input_layout;
    h.requests = requests_held(mesh_, h.layout, rank_, batch_);
    h.rows_per_request = s == Stream::kImage ? plan_.spec().workload.images_per_request : 1;
    return h;
  }

  // Binds collective `c` on the stream held as `h`, checking that the layout change is one the
  // rows' order supports, and moves `h` to the layout after it.
  BoundCollective bind(const Collective& c, StreamHold& h) const {
    BoundCollective b;
    b.op = c.op;
    b.group = group_holding(c.groups, rank_);
    b.what = std::string(to_string(c.op)) + axes_list(c.axes) + " after " + c.after;
    if (c.from_layout != h.layout) {
      throw std::logic_error(b.what + ": the plan's layouts before it do not follow the stream's");
    }
    const ActivationLayout& next = c.to_layout;
    std::vector<AxisState> states;
    for (const std::string& a : c.axes) states.push_back(h.layout.axes[*mesh_.axis_index(a)]);
    const auto all = [&](AxisState s) {
      return std::all_of(states.begin(), states.end(), [&](AxisState t) { return t == s; });
    };
    std::string problem;
    if (c.op == CollectiveOp::kAllReduce) {
      if (!all(AxisState::kPartial)) problem = "an all_reduce of an activation that is not partial";
    } else if (c.op == CollectiveOp::kReduceScatter) {
      if (!all(AxisState::kPartial)) {
        problem = "a reduce_scatter of an activation that is not partial";
      } else if (!h.split_axes.empty()) {
        problem = "a reduce_scatter of a data-parallel encoder's items";
      } else {
        problem = check_request_scatter(mesh_, h.layout, next, c.axes, batch_);
        h.requests = requests_held(mesh_, next, rank_, batch_);
      }
    } else if (c.split == CollectiveSplit::kVocabulary) {
      b.dim = -1;
    } else if (!all(AxisState::kBatchSplit)) {
      problem = "an all_gather over axes in different states";
    } else if (!h.split_axes.empty()) {
      // The members' shares concatenate, in group order, to the padded items: keep the real ones.
      if (c.axes != h.split_axes) {
        problem = "an all_gather over " + axes_list(c.axes) + " of items a data-parallel module split over " +
                  axes_list(h.split_axes);
      } else {
        b.keep_rows = h.whole_rows();
        h.split_axes.clear();
      }
    } else {
      problem = check_request_gather(mesh_, h.layout, next, c.axes, batch_);
      h.requests = requests_held(mesh_, next, rank_, batch_);
    }
    if (!problem.empty()) throw unsupported(b.what + ": " + problem);
    h.layout = next;
    return b;
  }

  // The local slice that takes `h` to `target` (replicated -> batch-split over some axes).
  // Text rows and whole items follow the requests (request_blocks.h); items entering a
  // data-parallel module of their own stream are padded and split evenly instead (`split_items`).
  RowSlice slice(StreamHold& h, const ActivationLayout& target, bool split_items, const std::string& where) const {
    RowSlice out;
    if (h.layout == target) return out;
    std::vector<std::string> axes;
    for (size_t x = 0; x < target.axes.size(); ++x) {
      if (h.layout.axes[x] == target.axes[x]) continue;
      if (h.layout.axes[x] != AxisState::kReplicated || target.axes[x] != AxisState::kBatchSplit) {
        throw std::logic_error("the plan's layouts in front of " + where + " do not follow");
      }
      axes.push_back(mesh_.axes()[x].name);
    }
    if (!h.split_axes.empty()) {
      throw unsupported("the local slice over " + axes_list(axes) + " in front of " + where +
                        " of items already split over " + axes_list(h.split_axes));
    }
    out.active = true;
    if (split_items) {
      const RankGroup group = group_holding(mesh_.groups(axes), rank_);  // a copy: groups() is a temporary
      const int64_t index = std::find(group.begin(), group.end(), rank_) - group.begin();
      h.split = encoder_item_slice(h.whole_rows(), static_cast<int64_t>(group.size()), index);
      h.split_axes = axes;
      out.begin = h.split.begin;
      out.count = h.split.count;
      out.padded = h.split.padded;
    } else {
      const std::string problem = check_request_slice(mesh_, h.layout, target, batch_);
      if (!problem.empty()) throw unsupported("the local slice of requests in front of " + where + " (" + problem + ")");
      const RequestRange want = requests_held(mesh_, target, rank_, batch_);
      out.begin = (want.begin - h.requests.begin) * h.rows_per_request;
      out.count = want.count * h.rows_per_request;
      h.requests = want;
    }
    h.layout = target;
    return out;
  }

  // Where another stream reaches a text module: its rows must be the items of exactly `want`.
  void expect_requests(StreamHold& h, const RequestRange& want, const std::string& where) const {
    if (!h.split_axes.empty()) {
      // A data-parallel share that happens to be the items of the module's requests (no padding).
      const bool same = h.split.padded == h.whole_rows() &&
                        h.requests.begin * h.rows_per_request + h.split.begin == want.begin * h.rows_per_request &&
                        h.split.count == want.count * h.rows_per_request;
      if (!same) {
        throw unsupported("the items split over " + axes_list(h.split_axes) + " reaching " + where +
                          " are not those of its requests [" + std::to_string(want.begin) + ", " +
                          std::to_string(want.end()) + ")");
      }
      h.split_axes.clear();
      h.requests = want;
    }
    if (!(h.requests == want)) {
      throw unsupported("the encoder stream reaching " + where + " holds requests [" + std::to_string(h.requests.begin) +
                        ", " + std::to_string(h.requests.end()) + "), the module computes [" +
                        std::to_string(want.begin) + ", " + std::to_string(want.end()) + ")");
    }
  }

 private:
  const Plan& plan_;
  const Mesh& mesh_;
  int64_t rank_;
  int64_t batch_;
};

}  // namespace

PlanBinding bind_plan(const Plan& plan, int64_t rank) {
  const ModelGraph& graph = plan.graph();
  if (!engine_supports_family(graph.family)) {
    throw unsupported("model family '" + graph.family + "' (model_type " + graph.model_type + ")");
  }
  const Mesh& mesh = plan.mesh;
  const int64_t batch = plan.spec().workload.batch;
  const std::vector<int64_t> coords = mesh.coords(rank);
  PlanBinding binding;

  // Where each collective belongs, in plan order, as its purpose and consumer say: in front of a
  // module on its own stream, in front of a text module on the stream it reads besides (side),
  // after an encoder's inner block, or at the output; the MoE pair inside its module.
  std::map<std::string, size_t> module_index, encoder_of_child;
  for (size_t i = 0; i < plan.modules.size(); ++i) {
    const Module& m = *plan.modules[i].module;
    module_index[m.path] = i;
    if (m.kind == ModuleKind::kEncoder) {
      for (const Module& child : m.children) encoder_of_child[child.path] = i;
    }
  }
  std::vector<std::vector<const Collective*>> before(plan.modules.size()), side_before(plan.modules.size());
  std::vector<std::vector<const Collective*>> inner(plan.modules.size());
  std::vector<const Collective*> at_output;
  for (const Collective& c : plan.comms) {
    const std::string where = std::string(to_string(c.op)) + " after " + c.after + " before " + c.before;
    if (c.purpose == CollectivePurpose::kMoeDispatch || c.purpose == CollectivePurpose::kMoeCombine) {
      continue;  // bound to the MoE module they sit around (bind_exchange)
    }
    if (c.op == CollectiveOp::kAllToAll) throw unsupported("all_to_all (" + where + ")");
    if (c.purpose == CollectivePurpose::kAfterEncoderBlock) {
      const auto child = encoder_of_child.find(c.after);
      if (child == encoder_of_child.end() || c.op != CollectiveOp::kAllReduce ||
          c.stream != plan.modules[child->second].module->stream) {
        throw unsupported("a " + std::string(to_string(c.op)) + " inside an encoder (" + where + ")");
      }
      inner[child->second].push_back(&c);
      continue;
    }
    if (c.before == "output" && c.stream == Stream::kText) {
      at_output.push_back(&c);
      continue;
    }
    const auto consumer = module_index.find(c.before);
    if (consumer == module_index.end()) throw unsupported("a collective inside a module (" + where + ")");
    const size_t i = consumer->second;
    if (plan.modules[i].module->stream == c.stream) {
      before[i].push_back(&c);
    } else if (plan.modules[i].side_stream == c.stream) {
      side_before[i].push_back(&c);
    } else {
      throw unsupported("a collective on the " + std::string(to_string(c.stream)) + " stream in front of " + c.before +
                        ", which does not read it (" + where + ")");
    }
  }

  PlanBinder binder(plan, rank);
  std::map<Stream, StreamHold> hold;
  for (Stream s : {Stream::kText, Stream::kImage, Stream::kAudio}) hold[s] = binder.start(s);

  for (size_t i = 0; i < plan.modules.size(); ++i) {
    const ModulePlan& mp = plan.modules[i];
    const Module& module = *mp.module;
    ModuleBinding m;
    m.stream = module.stream;
    StreamHold& h = hold[module.stream];
    for (const Collective* c : before[i]) m.before.push_back(binder.bind(*c, h));
    m.slice = binder.slice(h, mp.input_layout, module.stream != Stream::kText, module.path);
    m.request_range = h.requests;
    m.requests = h.requests.count;
    // Residual and row-parallel biases: once per partial group (its rank 0 on every partial
    // axis); inside a tensor-parallel encoder, once per group of the encoder's axes.
    for (size_t x = 0; x < mp.output_layout.axes.size(); ++x) {
      if (mp.output_layout.axes[x] == AxisState::kPartial && coords[x] != 0) m.adds_whole_terms = false;
    }
    if (module.kind == ModuleKind::kEncoder && mp.mode == ParallelMode::kTensor) {
      for (const std::string& a : mp.axes) {
        if (coords[*mesh.axis_index(a)] != 0) m.adds_whole_terms = false;
      }
    }
    for (const Collective* c : inner[i]) {
      BoundCollective b;
      b.op = c->op;
      b.group = group_holding(c->groups, rank);
      b.what = std::string(to_string(c->op)) + axes_list(c->axes) + " after " + c->after;
      m.after_block[c->after].push_back(std::move(b));
    }
    if (mp.side_stream) {
      StreamHold& side = hold[*mp.side_stream];
      m.reads_side = true;
      m.side_stream = *mp.side_stream;
      m.merges_side = mp.merges_side;
      for (const Collective* c : side_before[i]) m.side_before.push_back(binder.bind(*c, side));
      m.side_slice = binder.slice(side, mp.input_layout, false, module.path);
      binder.expect_requests(side, m.request_range, module.path);
    }
    bind_exchange(plan, i, rank, m);
    h.layout = mp.output_layout;
    binding.modules.push_back(std::move(m));
  }
  StreamHold& text = hold[Stream::kText];
  for (const Collective* c : at_output) binding.output.push_back(binder.bind(*c, text));
  const ActivationLayout& layout = text.layout;
  if (layout != plan.output_layout) {
    std::vector<std::string> names;
    for (const MeshAxis& a : mesh.axes()) names.push_back(a.name);
    throw unsupported("logits in layout " + layout.to_string(names) + " at the end of the forward pass");
  }
  binding.output_requests = requests_held(mesh, layout, rank, batch);
  binding.input_requests = requests_held(mesh, plan.input_layout, rank, batch);

  const std::vector<std::string> exchange = token_exchange_axes(plan, layout);
  if (!exchange.empty()) {
    const std::string problem = check_request_gather(mesh, layout, plan.input_layout, exchange, batch);
    if (!problem.empty()) {
      throw unsupported("gathering the sampled tokens over " + axes_list(exchange) + " (" + problem + ")");
    }
    binding.exchange_tokens = true;
    binding.token_exchange.op = CollectiveOp::kAllGather;
    binding.token_exchange.dim = 0;
    binding.token_exchange.group = group_holding(mesh.groups(exchange), rank);
    binding.token_exchange.what = "all_gather" + axes_list(exchange) + " of the sampled tokens";
  }
  return binding;
}

Engine::Engine(const Plan& plan, int64_t rank, Communicator* comm, const TensorShards& shards,
               EngineOptions options)
    : plan_(plan), comm_(comm), options_(options), binding_(bind_plan(plan, rank)) {
  if (plan.world_size() > 1 && comm == nullptr) {
    throw std::logic_error("a world of " + std::to_string(plan.world_size()) + " ranks needs a communicator");
  }
  model_ = make_family_model(plan.graph(), shards);
  std::vector<int64_t> requests;
  for (const ModuleBinding& m : binding_.modules) requests.push_back(m.requests);
  const WorkloadSpec& w = plan.spec().workload;
  capacity_ = prefill_tokens(plan) + w.new_tokens;
  model_->allocate(requests, capacity_);
}

Engine::~Engine() = default;

at::Tensor Engine::run(const BoundCollective& c, at::Tensor x) {
  if (c.group.size() <= 1) return c.keep_rows >= 0 ? x.narrow(0, 0, c.keep_rows) : x;
  x = x.contiguous();
  wait_for(x);
  const auto t0 = std::chrono::steady_clock::now();
  x = run_collective(c, x);
  if (c.keep_rows >= 0) x = x.narrow(0, 0, c.keep_rows);
  wait_for(x);
  seconds_by_kind_.at(kCollectivesSlot) += seconds_since(t0);
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
  wait_for(in.main);
  const auto t0 = std::chrono::steady_clock::now();
  double inside = 0;  // collectives inside the module
  at::Tensor out;
  if (m.exchange || !m.after_block.empty()) {
    BoundModuleComm comm(comm_, m, inside);
    out = model_->forward(i, in, step, m.adds_whole_terms, &comm);
  } else {
    out = model_->forward(i, in, step, m.adds_whole_terms, nullptr);
  }
  wait_for(out);
  seconds_by_kind_.at(time_slot(plan_.modules[i].module->kind)) += seconds_since(t0) - inside;
  seconds_by_kind_.at(kCollectivesSlot) += inside;
  return out;
}

at::Tensor Engine::forward(at::Tensor x, const EngineInputs* prefill, int64_t first_position, int64_t tokens,
                           int64_t attend_len) {
  const StepPositions step = model_->step_positions(first_position, tokens, attend_len, options_.device);
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
      items = run_module(i, in, step);
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
    x = run_module(i, in, step);
  }
  for (const BoundCollective& c : binding_.output) x = run(c, x);
  return x;
}

Generation Engine::generate(const EngineInputs& inputs, const at::Tensor* forced, int64_t max_steps) {
  const WorkloadSpec& w = plan_.spec().workload;
  const int64_t prompt = prefill_tokens(plan_);
  if (inputs.prompts.size(1) != prompt) {
    throw std::logic_error("prompts of " + std::to_string(inputs.prompts.size(1)) + " tokens for a prefill of " +
                           std::to_string(prompt));
  }
  const int64_t steps = max_steps >= 0 ? std::min(max_steps, w.new_tokens) : w.new_tokens;
  const auto t0 = std::chrono::steady_clock::now();
  Generation g;
  g.requests = binding_.output_requests;
  seconds_by_kind_.assign(kCollectivesSlot + 1, 0.0);
  std::vector<at::Tensor> tokens, logits;

  at::Tensor ids =
      inputs.prompts.narrow(0, binding_.input_requests.begin, binding_.input_requests.count).to(options_.device);
  if (steps == 0) {
    // new_tokens: 0 runs prefill alone (timed as the duration); no tokens, no logits.
    forward(ids, &inputs, 0, prompt, prompt).to(at::kCPU);
    g.last_token_s = seconds_since(t0);
    g.seconds_by_kind = seconds_by_kind_;
    g.tokens = at::zeros({g.requests.count, 0}, at::TensorOptions().dtype(at::kLong));
    if (options_.keep_logits) g.logits = at::zeros({0, g.requests.count, plan_.graph().vocab});
    return g;
  }
  for (int64_t s = 0; s < steps; ++s) {
    const bool prefill = s == 0;
    const at::Tensor out = prefill ? forward(ids, &inputs, 0, prompt, prompt)
                                   : forward(ids, nullptr, prompt + s - 1, 1, capacity_);
    const at::Tensor whole = out.to(at::kFloat);
    const at::Tensor next = whole.argmax(-1);
    // NOTE: the copy to the host waits for the device, so the times below are when the tokens exist.
    tokens.push_back(next.to(at::kCPU));
    if (options_.keep_logits) logits.push_back(whole.to(at::kCPU));
    if (prefill) g.first_token_s = seconds_since(t0);
    if (s + 1 == steps) break;
    if (forced) {
      ids = forced->select(1, s).narrow(0, binding_.input_requests.begin, binding_.input_requests.count).to(options_.device);
    } else {
      ids = binding_.exchange_tokens ? run(binding_.token_exchange, next) : next;
    }
    ids = ids.unsqueeze(1);
  }
  g.last_token_s = seconds_since(t0);
  g.seconds_by_kind = seconds_by_kind_;
  g.tokens = at::stack(tokens, 1);
  if (options_.keep_logits) g.logits = at::stack(logits, 0);
  return g;
}

}  // namespace shardplan
