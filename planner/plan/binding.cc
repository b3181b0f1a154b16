// Binding a plan to one rank (see binding.h).
#include "planner/plan/binding.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

namespace shardplan {
namespace {

BindError unsupported(const std::string& what, const std::string& module) {
  return BindError(what, module == "output" || module == "input" ? "" : module);
}

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
    throw unsupported("all_to_all around " + path + " without its dispatch / combine pair", path);
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
  std::map<int64_t, int64_t> member_of_owner;  // group rank over the module's axes -> member
  for (size_t j = 0; j < m.exchange_group.size(); ++j) {
    member_of_owner[plan.mesh.group_rank(m.exchange_group[j], mp.axes)] = static_cast<int64_t>(j);
  }
  m.expert_member.assign(mp.expert_owners.size(), -1);
  for (size_t e = 0; e < mp.expert_owners.size(); ++e) {
    const auto it = member_of_owner.find(mp.expert_owners[e]);
    if (it != member_of_owner.end()) m.expert_member[e] = it->second;
  }
}

}  // namespace

RequestRange output_requests(const Plan& plan, int64_t rank) {
  return requests_held(plan.mesh, plan.output_layout, rank, plan.spec().workload.batch);
}

std::vector<RankGroup> plan_groups(const Plan& plan) {
  std::set<RankGroup> groups;
  for (const Collective& c : plan.comms) {
    for (const RankGroup& g : c.groups) groups.insert(g);
  }
  if (!plan.modules.empty()) {
    const std::vector<std::string> axes = token_exchange_axes(plan, plan.output_layout);
    if (!axes.empty()) {
      for (const RankGroup& g : plan.mesh.groups(axes)) groups.insert(g);
    }
  }
  RankGroup world;
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

using RequestCheckMemo = std::map<std::string, std::string>;

class PlanBinder {
 public:
  PlanBinder(const Plan& plan, int64_t rank, RequestCheckMemo* memo)
      : plan_(plan), mesh_(plan.mesh), rank_(rank), batch_(plan.spec().workload.batch), memo_(memo) {}

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
        problem = memoized('s', h.layout, next, c.axes,
                           [&] { return check_request_scatter(mesh_, h.layout, next, c.axes, batch_); });
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
      problem = memoized('g', h.layout, next, c.axes,
                         [&] { return check_request_gather(mesh_, h.layout, next, c.axes, batch_); });
      h.requests = requests_held(mesh_, next, rank_, batch_);
    }
    if (!problem.empty()) throw unsupported(b.what + ": " + problem, c.before);
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
                        " of items already split over " + axes_list(h.split_axes), where);
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
      const std::string problem =
          memoized('l', h.layout, target, {}, [&] { return check_request_slice(mesh_, h.layout, target, batch_); });
      if (!problem.empty()) throw unsupported("the local slice of requests in front of " + where + " (" + problem + ")", where);
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
                          std::to_string(want.end()) + ")",
                          where);
      }
      h.split_axes.clear();
      h.requests = want;
    }
    if (!(h.requests == want)) {
      throw unsupported("the encoder stream reaching " + where + " holds requests [" + std::to_string(h.requests.begin) +
                        ", " + std::to_string(h.requests.end()) + "), the module computes [" +
                        std::to_string(want.begin) + ", " + std::to_string(want.end()) + ")",
                        where);
    }
  }

 private:
  const Plan& plan_;
  const Mesh& mesh_;
  int64_t rank_;
  int64_t batch_;
  RequestCheckMemo* memo_;

  // The request checks hold for every rank at once: one answer per (check, layouts, axes) for
  // all the ranks check_executable binds.
  template <typename Check>
  std::string memoized(char kind, const ActivationLayout& from, const ActivationLayout& to,
                       const std::vector<std::string>& axes, Check check) const {
    if (!memo_) return check();
    std::string key(1, kind);
    for (AxisState s : from.axes) key += static_cast<char>('0' + static_cast<int>(s));
    key += '>';
    for (AxisState s : to.axes) key += static_cast<char>('0' + static_cast<int>(s));
    for (const std::string& a : axes) key += "," + a;
    const auto it = memo_->find(key);
    if (it != memo_->end()) return it->second;
    return (*memo_)[key] = check();
  }
};

// Whether the rank computes every request of the batch all along the text stream: its prompts,
// every text module (no local slice, no expert exchange), the collectives in front of them and at
// the output (none gathers or scatters requests) and its tokens.
bool holds_every_request_everywhere(const PlanBinding& b, int64_t batch) {
  const auto whole = [batch](const RequestRange& r) { return r.begin == 0 && r.count == batch; };
  const auto keeps_rows = [](const BoundCollective& c) { return c.op == CollectiveOp::kAllReduce || c.dim != 0; };
  if (b.exchange_tokens || !whole(b.input_requests) || !whole(b.output_requests) ||
      !std::all_of(b.output.begin(), b.output.end(), keeps_rows)) {
    return false;
  }
  return std::all_of(b.modules.begin(), b.modules.end(), [&](const ModuleBinding& m) {
    return m.stream != Stream::kText || (!m.exchange && !m.slice.active && whole(m.request_range) &&
                                         std::all_of(m.before.begin(), m.before.end(), keeps_rows));
  });
}

PlanBinding bind_plan_with(const Plan& plan, int64_t rank, RequestCheckMemo* memo) {
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
    if (c.op == CollectiveOp::kAllToAll) throw unsupported("all_to_all (" + where + ")", c.before);
    if (c.purpose == CollectivePurpose::kAfterEncoderBlock) {
      const auto child = encoder_of_child.find(c.after);
      if (child == encoder_of_child.end() || c.op != CollectiveOp::kAllReduce ||
          c.stream != plan.modules[child->second].module->stream) {
        throw unsupported("a " + std::string(to_string(c.op)) + " inside an encoder (" + where + ")", c.before);
      }
      inner[child->second].push_back(&c);
      continue;
    }
    if (c.before == "output" && c.stream == Stream::kText) {
      at_output.push_back(&c);
      continue;
    }
    const auto consumer = module_index.find(c.before);
    if (consumer == module_index.end()) throw unsupported("a collective inside a module (" + where + ")", c.after);
    const size_t i = consumer->second;
    if (plan.modules[i].module->stream == c.stream) {
      before[i].push_back(&c);
    } else if (plan.modules[i].side_stream == c.stream) {
      side_before[i].push_back(&c);
    } else {
      throw unsupported("a collective on the " + std::string(to_string(c.stream)) + " stream in front of " + c.before +
                        ", which does not read it (" + where + ")",
                        c.before);
    }
  }

  PlanBinder binder(plan, rank, memo);
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
    if (mp.has_shared_expert) {
      // Partial axes of the routed part (its own mode) and of the shared expert (tensor only).
      for (size_t x = 0; x < mp.output_layout.axes.size(); ++x) {
        if (mp.output_layout.axes[x] != AxisState::kPartial || coords[x] == 0) continue;
        const std::string& axis = mesh.axes()[x].name;
        const bool routed = contains(mp.axes, axis) &&
                            (mp.mode == ParallelMode::kTensor || mp.mode == ParallelMode::kExpert);
        const bool shared = mp.shared_mode == ParallelMode::kTensor && contains(mp.shared_axes, axis);
        if (!routed) m.adds_routed = false;
        if (!shared) m.adds_shared = false;
      }
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
    throw unsupported("logits in layout " + layout.to_string(names) + " at the end of the forward pass",
                      plan.modules.back().module->path);
  }
  binding.output_requests = requests_held(mesh, layout, rank, batch);
  binding.input_requests = requests_held(mesh, plan.input_layout, rank, batch);

  const std::vector<std::string> exchange = token_exchange_axes(plan, layout);
  if (!exchange.empty()) {
    const std::string problem = check_request_gather(mesh, layout, plan.input_layout, exchange, batch);
    if (!problem.empty()) {
      throw unsupported("gathering the sampled tokens over " + axes_list(exchange) + " (" + problem + ")",
                        plan.modules.back().module->path);
    }
    binding.exchange_tokens = true;
    binding.token_exchange.op = CollectiveOp::kAllGather;
    binding.token_exchange.dim = 0;
    binding.token_exchange.group = group_holding(mesh.groups(exchange), rank);
    binding.token_exchange.what = "all_gather" + axes_list(exchange) + " of the sampled tokens";
  }
  binding.every_request_everywhere = holds_every_request_everywhere(binding, batch);
  return binding;
}

}  // namespace

PlanBinding bind_plan(const Plan& plan, int64_t rank) { return bind_plan_with(plan, rank, nullptr); }

void check_executable(const Plan& plan, Diagnostics& diags) {
  RequestCheckMemo memo;
  for (int64_t rank = 0; rank < plan.world_size(); ++rank) {
    try {
      bind_plan_with(plan, rank, &memo);
    } catch (const BindError& e) {
      const Spec& spec = plan.spec();
      SourcePos pos = spec.mesh_pos;
      for (const ModulePlan& mp : plan.modules) {
        if (mp.module->path == e.module() && mp.rule >= 0) pos = spec.rules[static_cast<size_t>(mp.rule)].pos;
      }
      diags.error(spec.file, pos, std::string("the executor cannot run this plan: ") + e.what());
      return;
    }
  }
}

}  // namespace shardplan
