// The activation-layout walk that derives every collective (see collectives.h).
#include "planner/plan/collectives.h"

#include <algorithm>
#include <map>

#include "planner/plan/request_blocks.h"

namespace shardplan {

std::optional<CollectiveOp> transition_op(AxisState from, AxisState to) {
  if (from == to) return std::nullopt;
  if (from == AxisState::kPartial && to == AxisState::kReplicated) return CollectiveOp::kAllReduce;
  if (from == AxisState::kPartial && to == AxisState::kBatchSplit) return CollectiveOp::kReduceScatter;
  if (from == AxisState::kBatchSplit && to == AxisState::kReplicated) return CollectiveOp::kAllGather;
  if (from == AxisState::kVocabSplit && to == AxisState::kReplicated) return CollectiveOp::kAllGather;
  return std::nullopt;  // replicated -> batch: a local slice
}

int64_t bytes_sent(CollectiveOp op, int64_t g, int64_t local_bytes) {
  if (g <= 1) return 0;
  switch (op) {
    case CollectiveOp::kAllReduce: return 2 * (g - 1) * local_bytes / g;
    case CollectiveOp::kReduceScatter: return (g - 1) * local_bytes / g;
    case CollectiveOp::kAllGather: return (g - 1) * local_bytes;
    case CollectiveOp::kAllToAll: return (g - 1) * local_bytes / g;
  }
  return 0;
}

namespace {

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// The shape of an activation at one point of a stream, per request (text) or per item.
struct ActivationShape {
  int64_t prefill_tokens = 0;  // per request or item
  int64_t decode_tokens = 0;   // per request, one decode step (0: the stream is prefill-only)
  int64_t width = 0;           // elements per token when whole (hidden size, or vocabulary)
};

class FlowWalk {
 public:
  explicit FlowWalk(Plan& plan) : plan_(plan), mesh_(plan.mesh), spec_(plan.spec()) {
    for (const auto& a : mesh_.axes()) axis_names_.push_back(a.name);
    ActivationLayout start;
    for (const auto& a : mesh_.axes()) {
      start.axes.push_back(contains(spec_.batch_axes, a.name) ? AxisState::kBatchSplit
                                                              : AxisState::kReplicated);
    }
    for (Stream s : {Stream::kText, Stream::kImage, Stream::kAudio}) {
      layout_[s] = start;
      writer_[s] = "input";
    }
    plan_.input_layout = start;
  }

  void run() {
    const auto& modules = plan_.modules;
    std::optional<Stream> pending_merge;
    for (size_t i = 0; i < modules.size(); ++i) {
      ModulePlan& mp = plan_.modules[i];
      const Module& m = *mp.module;
      const Stream s = m.stream;

      // llava: image features join the text stream right after the embedding, in the layout the
      // first module after the embedding needs.
      if (pending_merge && s == Stream::kText && m.kind != ModuleKind::kEmbedding) {
        const ActivationLayout need = requirement(mp, layout_[Stream::kText]);
        reshape(*pending_merge, need, m.path);
        reshape(Stream::kText, need, m.path);
        mp.side_stream = pending_merge;
        mp.merges_side = true;
        pending_merge.reset();
      }
      if (m.kv_stream) {
        const ActivationLayout need = requirement(mp, layout_[s]);
        reshape(*m.kv_stream, kv_requirement(layout_[*m.kv_stream], need), m.path);
        mp.side_stream = m.kv_stream;
      }

      if (m.kind == ModuleKind::kEncoder && mp.mode == ParallelMode::kTensor && !m.children.empty()) {
        walk_tensor_encoder(mp);
      } else if (m.kind == ModuleKind::kMoe && mp.mode == ParallelMode::kExpert) {
        walk_expert(mp);
      } else {
        reshape(s, requirement(mp, layout_[s]), m.path);
        mp.input_layout = layout_[s];
        layout_[s] = output(mp, layout_[s]);
        mp.output_layout = layout_[s];
        close_open(s, m.path);
        writer_[s] = m.path;
        writer_module_[s] = &mp;
        writer_child_[s] = false;
      }
      if (m.merges_into_text) pending_merge = s;
    }
    // The end: every request's logits whole on the ranks that hold it.
    ActivationLayout final = layout_[Stream::kText];
    for (auto& st : final.axes) {
      if (st == AxisState::kPartial || st == AxisState::kVocabSplit) st = AxisState::kReplicated;
    }
    reshape(Stream::kText, final, "output");
    close_open(Stream::kText, "output");
    plan_.output_layout = final;
  }

 private:
  // The layout a module needs on its main input, given what it gets.
  ActivationLayout requirement(const ModulePlan& mp, const ActivationLayout& cur) const {
    ActivationLayout need = cur;
    for (size_t x = 0; x < need.axes.size(); ++x) {
      AxisState& st = need.axes[x];
      const bool listed = contains(mp.axes, axis_names_[x]);
      const bool reduced = st == AxisState::kPartial || st == AxisState::kVocabSplit;
      if (!listed) {
        if (reduced) st = AxisState::kReplicated;  // no module computes on partial sums
        continue;
      }
      switch (mp.mode) {
        case ParallelMode::kTensor: st = AxisState::kReplicated; break;
        case ParallelMode::kData: st = AxisState::kBatchSplit; break;
        case ParallelMode::kExpert:
          if (st != AxisState::kBatchSplit) st = AxisState::kReplicated;
          break;
        case ParallelMode::kReplicate:
          if (reduced) st = AxisState::kReplicated;
          break;
      }
    }
    // A tensor-parallel shared expert needs the tokens whole over its axes too (check_spec
    // refuses its axes overlapping a data-mode MoE's).
    if (mp.has_shared_expert && mp.shared_mode == ParallelMode::kTensor) {
      for (size_t x = 0; x < need.axes.size(); ++x) {
        if (contains(mp.shared_axes, axis_names_[x]) && mp.mode != ParallelMode::kData) {
          need.axes[x] = AxisState::kReplicated;
        }
      }
    }
    return need;
  }

  // Cross-attention's encoder-side input must hold the encoder states of exactly the requests
  // the module computes: split where its decoder input is split, whole everywhere else (and never
  // partial). Under tensor the fused k/v projection is column-parallel, so it needs them whole.
  ActivationLayout kv_requirement(const ActivationLayout& kv, const ActivationLayout& text_need) const {
    ActivationLayout need = kv;
    for (size_t x = 0; x < need.axes.size(); ++x) {
      need.axes[x] = text_need.axes[x] == AxisState::kBatchSplit ? AxisState::kBatchSplit
                                                                 : AxisState::kReplicated;
    }
    return need;
  }

  ActivationLayout output(const ModulePlan& mp, const ActivationLayout& in) const {
    ActivationLayout out = in;
    for (size_t x = 0; x < out.axes.size(); ++x) {
      if (!contains(mp.axes, axis_names_[x])) continue;
      switch (mp.mode) {
        case ParallelMode::kTensor:
          out.axes[x] = mp.module->kind == ModuleKind::kLmHead ? AxisState::kVocabSplit
                                                               : AxisState::kPartial;
          break;
        case ParallelMode::kData: out.axes[x] = AxisState::kBatchSplit; break;
        case ParallelMode::kExpert:
          if (in.axes[x] != AxisState::kBatchSplit) out.axes[x] = AxisState::kPartial;
          break;
        case ParallelMode::kReplicate: break;
      }
    }
    if (mp.has_shared_expert && mp.shared_mode == ParallelMode::kTensor) {
      for (size_t x = 0; x < out.axes.size(); ++x) {
        if (contains(mp.shared_axes, axis_names_[x])) out.axes[x] = AxisState::kPartial;
      }
    }
    return out;
  }

  // Every layer inside a tensor-parallel encoder: input whole, output partial, reduced before
  // the next layer.
  void walk_tensor_encoder(ModulePlan& mp) {
    const Stream s = mp.module->stream;
    reshape(s, requirement(mp, layout_[s]), mp.module->path);
    mp.input_layout = layout_[s];
    writer_module_[s] = &mp;
    for (const Module& child : mp.module->children) {
      reshape(s, requirement(mp, layout_[s]), child.path);
      layout_[s] = output(mp, layout_[s]);
      close_open(s, child.path);
      writer_[s] = child.path;
      writer_child_[s] = true;
    }
    // The encoder's own last steps (final norm, feature selection) need whole values: the last
    // block's partial output is reduced inside the encoder.
    ActivationLayout whole = layout_[s];
    for (auto& st : whole.axes) {
      if (st == AxisState::kPartial) st = AxisState::kReplicated;
    }
    reshape(s, whole, mp.module->path);
    mp.output_layout = layout_[s];
    writer_module_[s] = &mp;
    writer_[s] = mp.module->path;
    writer_child_[s] = false;
  }

  // An expert-mode MoE: over the axes where tokens are batch-split, all_to_all to the experts'
  // owners and back; over the axes where they are replicated, each rank runs its own experts on
  // all tokens and the output is partial.
  void walk_expert(ModulePlan& mp) {
    const Stream s = mp.module->stream;
    const std::string& path = mp.module->path;
    reshape(s, requirement(mp, layout_[s]), path);
    mp.input_layout = layout_[s];
    std::vector<std::string> a2a_axes;
    for (size_t x = 0; x < axis_names_.size(); ++x) {
      if (contains(mp.axes, axis_names_[x]) && layout_[s].axes[x] == AxisState::kBatchSplit) {
        a2a_axes.push_back(axis_names_[x]);
      }
    }
    if (!a2a_axes.empty()) {
      const int64_t g = mesh_.group_size(a2a_axes);
      const int64_t k = std::max<int64_t>(mp.module->dims.experts_per_token, 1);
      const ActivationShape shape = shape_at(s, writer_[s]);
      const int64_t bytes = dtype_bytes(spec_.dtype);
      const int64_t reqs = units_on_rank(s, layout_[s]);
      Collective c;
      c.op = CollectiveOp::kAllToAll;
      c.axes = a2a_axes;
      c.groups = mesh_.groups(a2a_axes);
      c.stream = s;
      c.bytes_prefill = bytes_sent(c.op, g, reqs * shape.prefill_tokens * k * shape.width * bytes);
      c.bytes_decode = bytes_sent(c.op, g, reqs * shape.decode_tokens * k * shape.width * bytes);
      c.after = writer_[s];
      c.before = path;
      c.purpose = CollectivePurpose::kMoeDispatch;
      c.split = CollectiveSplit::kRequests;
      c.from_layout = c.to_layout = layout_[s];
      plan_.comms.push_back(c);
      close_open(s, path);
      c.after = path;
      c.before.clear();
      c.purpose = CollectivePurpose::kMoeCombine;
      plan_.comms.push_back(c);
      open_[s].push_back(plan_.comms.size() - 1);
    } else {
      close_open(s, path);
    }
    layout_[s] = output(mp, layout_[s]);
    mp.output_layout = layout_[s];
    writer_[s] = path;
    writer_module_[s] = &mp;
    writer_child_[s] = false;
  }

  // Emits the collectives that take stream `s` from its layout to `target`: reductions first
  // (they shrink what follows), then gathers; each op once over all the axes that need it.
  void reshape(Stream s, const ActivationLayout& target, const std::string& consumer) {
    ActivationLayout& cur = layout_[s];
    for (CollectiveOp op : {CollectiveOp::kReduceScatter, CollectiveOp::kAllReduce,
                            CollectiveOp::kAllGather}) {
      std::vector<size_t> idx;
      for (size_t x = 0; x < cur.axes.size(); ++x) {
        if (transition_op(cur.axes[x], target.axes[x]) == op) idx.push_back(x);
      }
      if (idx.empty()) continue;
      // NOTE: requests are split over the batch-split axes in mesh order (mixed radix, first
      // axis slowest), so gathering or scattering requests lists the axes in mesh order; only
      // gathered vocabulary follows the split order of the lm_head that produced it.
      const bool vocab = cur.axes[idx[0]] == AxisState::kVocabSplit;
      std::vector<std::string> axes = vocab ? ordered_axes(s, idx) : mesh_order(idx);
      const int64_t g = mesh_.group_size(axes);
      const ActivationShape shape = shape_at(s, writer_[s]);
      const int64_t bytes = dtype_bytes(spec_.dtype);
      // Local bytes before the op: the split dimension is already divided where it is split.
      int64_t width = shape.width;
      if (op == CollectiveOp::kAllGather && vocab) {
        width = shape.width / g;
      }
      const int64_t units = units_on_rank(s, cur);
      Collective c;
      c.after = writer_[s];
      c.before = consumer;
      c.op = op;
      c.axes = axes;
      c.groups = mesh_.groups(axes);
      c.stream = s;
      c.bytes_prefill = bytes_sent(op, g, units * shape.prefill_tokens * width * bytes);
      c.bytes_decode = bytes_sent(op, g, units * shape.decode_tokens * width * bytes);
      const bool after_block = writer_child_.count(s) && writer_child_.at(s);
      c.purpose = after_block ? CollectivePurpose::kAfterEncoderBlock : CollectivePurpose::kBetweenModules;
      c.split = op == CollectiveOp::kAllReduce ? CollectiveSplit::kHidden
                : vocab                        ? CollectiveSplit::kVocabulary
                : s == Stream::kText           ? CollectiveSplit::kRequests
                                               : CollectiveSplit::kItems;
      c.from_layout = cur;
      for (size_t x : idx) cur.axes[x] = target.axes[x];
      c.to_layout = cur;
      plan_.comms.push_back(std::move(c));
    }
    // What is left (replicated -> batch) is a local slice.
    cur = target;
  }

  std::vector<std::string> mesh_order(const std::vector<size_t>& idx) const {
    std::vector<std::string> out;
    for (size_t x : idx) out.push_back(axis_names_[x]);
    return out;
  }

  // A collective over several axes lists them as the module that split them did, then in mesh
  // order; the order fixes how gathered pieces are concatenated.
  std::vector<std::string> ordered_axes(Stream s, const std::vector<size_t>& idx) const {
    std::vector<std::string> names;
    for (size_t x : idx) names.push_back(axis_names_[x]);
    std::vector<std::string> out;
    auto it = writer_module_.find(s);
    if (it != writer_module_.end() && it->second) {
      for (const auto& a : it->second->axes) {
        if (contains(names, a)) out.push_back(a);
      }
    }
    for (const auto& a : names) {
      if (!contains(out, a)) out.push_back(a);
    }
    return out;
  }

  // Requests (text) or items (image, audio) a rank holds under `layout`.
  int64_t units_on_rank(Stream s, const ActivationLayout& layout) const {
    int64_t split = 1;
    for (size_t x = 0; x < layout.axes.size(); ++x) {
      if (layout.axes[x] == AxisState::kBatchSplit) split *= mesh_.axes()[x].size;
    }
    const auto& w = spec_.workload;
    if (s == Stream::kText) return w.batch / split;
    const int64_t items = s == Stream::kImage ? w.batch * w.images_per_request : w.batch;
    return encoder_item_slice(items, split, 0).count;  // data-parallel encoders pad the items
  }

  // The activation after module `after` on stream s.
  ActivationShape shape_at(Stream s, const std::string& after) const {
    const ModelGraph& g = plan_.graph();
    const auto& w = spec_.workload;
    ActivationShape shape;
    if (s == Stream::kText) {
      shape.prefill_tokens = w.prompt_tokens + w.images_per_request * g.workload.tokens_per_image;
      shape.decode_tokens = 1;
      shape.width = g.hidden;
      auto it = writer_module_.find(s);
      if (it != writer_module_.end() && it->second &&
          it->second->module->kind == ModuleKind::kLmHead && after == it->second->module->path) {
        // Logits: the last position of each request in prefill, one per step in decode.
        shape.prefill_tokens = 1;
        shape.width = g.vocab;
      }
      return shape;
    }
    // Encoder streams run in prefill only; their outputs are cached for decode.
    auto it = writer_module_.find(s);
    const ModulePlan* mp = it != writer_module_.end() ? it->second : nullptr;
    const bool inside_encoder = writer_child_.count(s) && writer_child_.at(s);
    if (s == Stream::kAudio) {
      shape.prefill_tokens = g.workload.encoder_tokens_per_clip;
      shape.width = mp ? mp->module->dims.hidden : 0;
      return shape;
    }
    // Image: CLIP tokens (class token included) inside the tower, selected features after it.
    shape.prefill_tokens = inside_encoder ? g.workload.encoder_tokens_per_item
                                          : g.workload.tokens_per_image;
    shape.width = mp ? (mp->module->kind == ModuleKind::kProjector ? g.hidden
                                                                   : mp->module->dims.hidden)
                     : 0;
    return shape;
  }

  // Collectives emitted after a module whose consumer was not known yet get it now.
  void close_open(Stream s, const std::string& consumer) {
    for (size_t i : open_[s]) plan_.comms[i].before = consumer;
    open_[s].clear();
  }

  Plan& plan_;
  const Mesh& mesh_;
  const Spec& spec_;
  std::vector<std::string> axis_names_;
  std::map<Stream, ActivationLayout> layout_;
  std::map<Stream, std::string> writer_;
  std::map<Stream, const ModulePlan*> writer_module_;
  std::map<Stream, bool> writer_child_;
  std::map<Stream, std::vector<size_t>> open_;
};

}  // namespace

void derive_collectives(Plan& plan) {
  plan.comms.clear();
  FlowWalk(plan).run();
}

}  // namespace shardplan
