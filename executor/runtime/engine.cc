// Binding a plan to one rank and running prefill and decode (see engine.h).
#include "executor/runtime/engine.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "executor/runtime/run_error.h"

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

// The layout the plan starts from: requests split over the batch axes, replicated elsewhere.
ActivationLayout input_layout(const Plan& plan) {
  ActivationLayout layout;
  for (const MeshAxis& a : plan.mesh.axes()) {
    layout.axes.push_back(contains(plan.spec().batch_axes, a.name) ? AxisState::kBatchSplit
                                                                   : AxisState::kReplicated);
  }
  return layout;
}

// The axes (mesh order) on which the requests are split at the end but not at the start: the
// sampled tokens are gathered over them before the next step.
std::vector<std::string> token_exchange_axes(const Plan& plan, const ActivationLayout& out) {
  const ActivationLayout in = input_layout(plan);
  std::vector<std::string> axes;
  for (size_t x = 0; x < in.axes.size(); ++x) {
    if (out.axes[x] == AxisState::kBatchSplit && in.axes[x] != AxisState::kBatchSplit) {
      axes.push_back(plan.mesh.axes()[x].name);
    }
  }
  return axes;
}

ActivationLayout final_layout(const Plan& plan) {
  ActivationLayout out = plan.modules.back().output_layout;
  for (AxisState& s : out.axes) {
    if (s == AxisState::kPartial || s == AxisState::kVocabSplit) s = AxisState::kReplicated;
  }
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The all_to_all pair of module i (an expert-mode MoE with batch-split tokens), if the plan has
// one: its group and, for every expert, the member that holds it (found from the plan's shards of
// the expert's tensors). Checks: dispatch sits in front of the module and combine after it, over
// the same groups; every expert is held whole by at most one member of the group.
void bind_exchange(const Plan& plan, size_t i, int64_t rank, ModuleBinding& m) {
  const ModulePlan& mp = plan.modules[i];
  const std::string& path = mp.module->path;
  const Collective* dispatch = nullptr;
  const Collective* combine = nullptr;
  for (const Collective& c : plan.comms) {
    if (c.op != CollectiveOp::kAllToAll) continue;
    if (c.purpose == "dispatch" && c.before == path) dispatch = &c;
    if (c.purpose == "combine" && c.after == path) combine = &c;
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
  m.expert_member.assign(static_cast<size_t>(mp.module->dims.experts), -1);
  for (const ParamPlan& p : plan.params) {
    if (p.param->expert < 0 || p.param->name.rfind(path + ".", 0) != 0) continue;
    int64_t& member = m.expert_member.at(static_cast<size_t>(p.param->expert));
    for (size_t j = 0; j < m.exchange_group.size(); ++j) {
      const ShardSlice slice = shard_for_rank(p, plan.mesh, m.exchange_group[j]);
      if (slice.numel() == 0) continue;
      if (slice.shape != p.param->shape || (member >= 0 && member != static_cast<int64_t>(j))) {
        throw unsupported("expert " + std::to_string(p.param->expert) + " of " + path +
                          " split or held twice in the all_to_all group");
      }
      member = static_cast<int64_t>(j);
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

// The runtime side of a module's ModuleComm: the plan's all_to_all pair through the Communicator.
// The time its collectives take is added to `collective_s`.
class ExchangeComm : public ModuleComm {
 public:
  ExchangeComm(Communicator* comm, const ModuleBinding& m, double& collective_s)
      : comm_(comm), m_(m), collective_s_(collective_s) {
    for (size_t j = 0; j < m.exchange_group.size(); ++j) {
      if (m.exchange_group[j] == comm->rank()) index_ = static_cast<int64_t>(j);
    }
  }
  int64_t group_size() const override { return static_cast<int64_t>(m_.exchange_group.size()); }
  int64_t group_index() const override { return index_; }
  const std::vector<int64_t>& expert_member() const override { return m_.expert_member; }
  at::Tensor exchange_counts(const at::Tensor& counts) override {
    // NOTE: the counts ride on an all_to_all of the same group (one row per member), so the
    // dispatch's row counts are known on both sides before the rows move.
    const std::vector<int64_t> ones(m_.exchange_group.size(), 1);
    return timed(counts, ones, ones, "counts of " + m_.dispatch_what);
  }
  at::Tensor all_to_all(const std::string& purpose, const at::Tensor& rows, const std::vector<int64_t>& send_counts,
                        const std::vector<int64_t>& recv_counts) override {
    if (purpose != "dispatch" && purpose != "combine") {
      throw std::logic_error("the plan has no all_to_all '" + purpose + "' in this module");
    }
    return timed(rows, send_counts, recv_counts, purpose == "dispatch" ? m_.dispatch_what : m_.combine_what);
  }

 private:
  at::Tensor timed(const at::Tensor& rows, const std::vector<int64_t>& send_counts,
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

}  // namespace

std::vector<std::string> engine_time_categories() {
  std::vector<std::string> names;
  for (ModuleKind kind : kTimedKinds) names.push_back(to_string(kind));
  names.push_back("collectives");
  return names;
}

bool engine_supports_family(const std::string& family) { return family_has_forward(family); }

RequestRange output_requests(const Plan& plan, int64_t rank) {
  return requests_held(plan.mesh, final_layout(plan), rank, plan.spec().workload.batch);
}

std::vector<RankList> engine_groups(const Plan& plan) {
  std::set<RankList> groups;
  for (const Collective& c : plan.comms) {
    for (const RankGroup& g : c.groups) groups.insert(g);
  }
  if (!plan.modules.empty()) {
    const std::vector<std::string> axes = token_exchange_axes(plan, final_layout(plan));
    if (!axes.empty()) {
      for (const RankGroup& g : plan.mesh.groups(axes)) groups.insert(g);
    }
  }
  RankList world;
  for (int64_t r = 0; r < plan.world_size(); ++r) world.push_back(r);
  groups.insert(world);
  return {groups.begin(), groups.end()};
}

PlanBinding bind_plan(const Plan& plan, int64_t rank) {
  const ModelGraph& graph = plan.graph();
  if (!engine_supports_family(graph.family)) {
    throw unsupported("model family '" + graph.family + "' (model_type " + graph.model_type + ")");
  }
  const Mesh& mesh = plan.mesh;
  const int64_t batch = plan.spec().workload.batch;
  const std::vector<int64_t> coords = mesh.coords(rank);
  PlanBinding binding;

  // Which collectives sit in front of which module, in plan order.
  std::vector<std::vector<const Collective*>> before(plan.modules.size());
  std::vector<const Collective*> at_output;
  for (const Collective& c : plan.comms) {
    const std::string where = std::string(to_string(c.op)) + " after " + c.after + " before " + c.before;
    if (c.stream != Stream::kText) {
      throw unsupported("a collective on the " + std::string(to_string(c.stream)) + " stream (" + where + ")");
    }
    if (c.op == CollectiveOp::kAllToAll) {
      // Bound to the MoE module they sit around (see below), not to the module after.
      if (c.purpose != "dispatch" && c.purpose != "combine") throw unsupported("all_to_all (" + where + ")");
      continue;
    }
    if (c.before == "output") {
      at_output.push_back(&c);
      continue;
    }
    bool found = false;
    for (size_t i = 0; i < plan.modules.size() && !found; ++i) {
      if (plan.modules[i].module->path == c.before) {
        before[i].push_back(&c);
        found = true;
      }
    }
    if (!found) throw unsupported("a collective inside a module (" + where + ")");
  }

  // Walks the layouts as the plan derived them, binding each collective and checking that every
  // change of requests is one the mixed-radix order of request_blocks.h supports.
  ActivationLayout layout = input_layout(plan);
  const auto bind = [&](const Collective& c) {
    BoundCollective b;
    b.op = c.op;
    b.group = group_holding(c.groups, rank);
    b.what = std::string(to_string(c.op)) + axes_list(c.axes) + " after " + c.after;
    ActivationLayout next = layout;
    std::vector<AxisState> states;
    for (const std::string& a : c.axes) {
      const int x = *mesh.axis_index(a);
      states.push_back(layout.axes[x]);
      next.axes[x] = c.op == CollectiveOp::kReduceScatter ? AxisState::kBatchSplit : AxisState::kReplicated;
    }
    const auto all = [&](AxisState s) {
      return std::all_of(states.begin(), states.end(), [&](AxisState t) { return t == s; });
    };
    std::string problem;
    if (c.op == CollectiveOp::kAllReduce) {
      if (!all(AxisState::kPartial)) problem = "an all_reduce of an activation that is not partial";
    } else if (c.op == CollectiveOp::kReduceScatter) {
      problem = all(AxisState::kPartial) ? check_request_scatter(mesh, layout, next, c.axes, batch)
                                         : "a reduce_scatter of an activation that is not partial";
    } else if (all(AxisState::kVocabSplit)) {
      b.dim = -1;
    } else if (all(AxisState::kBatchSplit)) {
      problem = check_request_gather(mesh, layout, next, c.axes, batch);
    } else {
      problem = "an all_gather over axes in different states";
    }
    if (!problem.empty()) throw unsupported(b.what + ": " + problem);
    layout = next;
    return b;
  };

  for (size_t i = 0; i < plan.modules.size(); ++i) {
    const ModulePlan& mp = plan.modules[i];
    ModuleBinding m;
    for (const Collective* c : before[i]) m.before.push_back(bind(*c));
    if (layout != mp.input_layout) {
      for (size_t x = 0; x < layout.axes.size(); ++x) {
        if (layout.axes[x] != mp.input_layout.axes[x] &&
            !(layout.axes[x] == AxisState::kReplicated && mp.input_layout.axes[x] == AxisState::kBatchSplit)) {
          throw std::logic_error("the plan's layouts in front of " + mp.module->path + " do not follow");
        }
      }
      const std::string problem = check_request_slice(mesh, layout, mp.input_layout, batch);
      if (!problem.empty()) {
        throw unsupported("the local slice of requests in front of " + mp.module->path + " (" + problem + ")");
      }
      const RequestRange have = requests_held(mesh, layout, rank, batch);
      const RequestRange want = requests_held(mesh, mp.input_layout, rank, batch);
      m.slice = true;
      m.slice_begin = want.begin - have.begin;
      m.slice_count = want.count;
      layout = mp.input_layout;
    }
    m.requests = requests_held(mesh, layout, rank, batch).count;
    // Residual and row-parallel biases: once per partial group (its rank 0 on every partial axis).
    for (size_t x = 0; x < mp.output_layout.axes.size(); ++x) {
      if (mp.output_layout.axes[x] == AxisState::kPartial && coords[x] != 0) m.adds_whole_terms = false;
    }
    bind_exchange(plan, i, rank, m);
    layout = mp.output_layout;
    binding.modules.push_back(std::move(m));
  }
  for (const Collective* c : at_output) binding.output.push_back(bind(*c));
  if (layout != final_layout(plan)) {
    std::vector<std::string> names;
    for (const MeshAxis& a : mesh.axes()) names.push_back(a.name);
    throw unsupported("logits in layout " + layout.to_string(names) + " at the end of the forward pass");
  }
  binding.output_requests = requests_held(mesh, layout, rank, batch);
  binding.input_requests = requests_held(mesh, input_layout(plan), rank, batch);

  const std::vector<std::string> exchange = token_exchange_axes(plan, layout);
  if (!exchange.empty()) {
    const std::string problem = check_request_gather(mesh, layout, input_layout(plan), exchange, batch);
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
  capacity_ = w.prompt_tokens + w.new_tokens;
  model_->allocate(requests, capacity_);
}

Engine::~Engine() = default;

at::Tensor Engine::run(const BoundCollective& c, at::Tensor x) {
  if (c.group.size() <= 1) return x;
  x = x.contiguous();
  wait_for(x);
  const auto t0 = std::chrono::steady_clock::now();
  x = run_collective(c, x);
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

at::Tensor Engine::forward(at::Tensor x, int64_t first_position, int64_t tokens, int64_t attend_len) {
  const StepPositions step = model_->step_positions(first_position, tokens, attend_len, options_.device);
  for (size_t i = 0; i < binding_.modules.size(); ++i) {
    const ModuleBinding& m = binding_.modules[i];
    for (const BoundCollective& c : m.before) x = run(c, x);
    if (m.slice) x = x.narrow(0, m.slice_begin, m.slice_count);
    ModuleInputs in;
    in.main = x;
    wait_for(x);
    const auto t0 = std::chrono::steady_clock::now();
    double inside = 0;  // collectives inside the module
    if (m.exchange) {
      ExchangeComm exchange(comm_, m, inside);
      x = model_->forward(i, in, step, m.adds_whole_terms, &exchange);
    } else {
      x = model_->forward(i, in, step, m.adds_whole_terms, nullptr);
    }
    wait_for(x);
    seconds_by_kind_.at(time_slot(plan_.modules[i].module->kind)) += seconds_since(t0) - inside;
    seconds_by_kind_.at(kCollectivesSlot) += inside;
  }
  for (const BoundCollective& c : binding_.output) x = run(c, x);
  return x;
}

Generation Engine::generate(const at::Tensor& prompts, const at::Tensor* forced, int64_t max_steps) {
  const WorkloadSpec& w = plan_.spec().workload;
  const int64_t steps = max_steps >= 0 ? std::min(max_steps, w.new_tokens) : w.new_tokens;
  const auto t0 = std::chrono::steady_clock::now();
  Generation g;
  g.requests = binding_.output_requests;
  seconds_by_kind_.assign(kCollectivesSlot + 1, 0.0);
  std::vector<at::Tensor> tokens, logits;

  at::Tensor ids = prompts.narrow(0, binding_.input_requests.begin, binding_.input_requests.count).to(options_.device);
  if (steps == 0) {
    // new_tokens: 0 runs prefill alone (timed as the duration); no tokens, no logits.
    forward(ids, 0, w.prompt_tokens, w.prompt_tokens).to(at::kCPU);
    g.last_token_s = seconds_since(t0);
    g.seconds_by_kind = seconds_by_kind_;
    g.tokens = at::zeros({g.requests.count, 0}, at::TensorOptions().dtype(at::kLong));
    if (options_.keep_logits) g.logits = at::zeros({0, g.requests.count, plan_.graph().vocab});
    return g;
  }
  for (int64_t s = 0; s < steps; ++s) {
    const bool prefill = s == 0;
    const at::Tensor out = prefill ? forward(ids, 0, w.prompt_tokens, w.prompt_tokens)
                                   : forward(ids, w.prompt_tokens + s - 1, 1, capacity_);
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
