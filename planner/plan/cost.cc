// Per-rank memory and FLOPs (see cost.h).
#include "planner/plan/cost.h"

#include "planner/plan/request_blocks.h"

#include <cmath>
#include "models/graph/moe_dense_rule.h"

#include <algorithm>
#include <map>
#include <string>

namespace shardplan {
namespace {

int64_t requests_on_rank(const Plan& plan, const ActivationLayout& layout) {
  int64_t split = 1;
  for (size_t x = 0; x < layout.axes.size(); ++x) {
    if (layout.axes[x] == AxisState::kBatchSplit) split *= plan.mesh.axes()[x].size;
  }
  return plan.spec().workload.batch / std::max<int64_t>(split, 1);
}

bool is_matrix(const Param& p) { return p.shape.size() >= 2; }

// Heads of an attention module a rank computes (KV heads replicated when the group is larger).
void heads_on_rank(const ModulePlan& mp, const Mesh& mesh, int64_t& q_heads, int64_t& kv_heads) {
  const ModuleDims& d = mp.module->dims;
  q_heads = d.heads;
  kv_heads = d.kv_heads > 0 ? d.kv_heads : d.heads;
  if (mp.mode != ParallelMode::kTensor) return;
  const int64_t g = mesh.group_size(mp.axes);
  q_heads = d.heads / g;
  kv_heads = g <= kv_heads ? kv_heads / g : 1;
}

}  // namespace

void compute_costs(Plan& plan) {
  const Mesh& mesh = plan.mesh;
  const int64_t world = mesh.world_size();
  const auto& w = plan.spec().workload;
  const int64_t bytes = dtype_bytes(plan.spec().dtype);
  plan.ranks.assign(world, RankCost{});

  // NOTE: a DeepSeek-sized MoE has ~50k expert tensors on 256 ranks; group ranks are looked up
  // in a table per axes list rather than recomputed 12M times.
  std::map<std::vector<std::string>, std::vector<int64_t>> group_rank_tables;
  auto group_ranks = [&](const std::vector<std::string>& axes) -> const std::vector<int64_t>& {
    auto it = group_rank_tables.find(axes);
    if (it != group_rank_tables.end()) return it->second;
    std::vector<int64_t> table(world);
    for (int64_t r = 0; r < world; ++r) table[r] = mesh.group_rank(r, axes);
    return group_rank_tables.emplace(axes, std::move(table)).first->second;
  };

  // The share of each module's weights a decode step reads (see RankCost::decode_weight_bytes),
  // per module: 0 for embeddings and the encoders' streams; for routed experts the expected share
  // hit, 1 when the block runs dense. A sparse block or an expert exchange decodes eagerly.
  std::vector<double> expert_share(plan.modules.size(), 1.0);
  std::vector<bool> reads_in_decode(plan.modules.size(), true);
  bool eager = false;
  for (size_t i = 0; i < plan.modules.size(); ++i) {
    const ModulePlan& mp = plan.modules[i];
    const Module& m = *mp.module;
    if (m.stream != Stream::kText || m.kind == ModuleKind::kEmbedding) reads_in_decode[i] = false;
    if (m.kind != ModuleKind::kMoe || m.dims.experts <= 0) continue;
    const int64_t rows = requests_on_rank(plan, mp.input_layout);
    const int64_t experts = m.dims.experts, k = m.dims.experts_per_token;
    const bool expert_mode = mp.mode == ParallelMode::kExpert;
    bool exchange = false;  // batch-split tokens over the expert axes: the all_to_all pair
    for (size_t x = 0; expert_mode && x < mp.input_layout.axes.size(); ++x) {
      if (mp.input_layout.axes[x] == AxisState::kBatchSplit &&
          std::find(mp.axes.begin(), mp.axes.end(), mesh.axes()[x].name) != mp.axes.end()) {
        exchange = true;
      }
    }
    const int64_t held = expert_mode ? experts / std::max<int64_t>(mesh.group_size(mp.axes), 1) : experts;
    if (!exchange && moe_dense_rule(rows, k, held)) continue;
    eager = true;
    // Each of `rows` tokens picks k of the experts: an expert is hit with 1 - (1 - k/E)^rows.
    expert_share[i] = 1.0 - std::pow(1.0 - static_cast<double>(k) / static_cast<double>(experts),
                                     static_cast<double>(std::max<int64_t>(rows, 1)));
  }
  auto decode_share = [&](const ParamPlan& p) {
    if (!reads_in_decode[p.module]) return 0.0;
    return p.param->expert >= 0 ? expert_share[p.module] : 1.0;
  };
  std::vector<double> decode_bytes(world, 0.0);
  double decode_common = 0;

  // Weights: exact, from each rank's slices. Whole tensors are counted once for all ranks.
  int64_t common = 0;
  std::vector<std::vector<int64_t>> module_bytes(plan.modules.size(), std::vector<int64_t>());
  std::vector<int64_t> module_common(plan.modules.size(), 0);
  for (const ParamPlan& p : plan.params) {
    const int64_t full = p.param->numel() * bytes;
    const double share = decode_share(p);
    if (p.split_dim < 0 && p.expert_axes.empty()) {
      common += full;
      module_common[p.module] += full;
      decode_common += share * static_cast<double>(full);
      continue;
    }
    auto& per_rank = module_bytes[p.module];
    if (per_rank.empty()) per_rank.assign(world, 0);
    if (p.split_dim < 0) {
      // A whole expert tensor: only on the ranks that own its expert (one lookup table per axes).
      const std::vector<int64_t>& owner = group_ranks(p.expert_axes);
      for (int64_t r = 0; r < world; ++r) {
        if (owner[r] != p.owner_group_rank) continue;
        plan.ranks[r].weight_bytes += full;
        per_rank[r] += full;
        decode_bytes[r] += share * static_cast<double>(full);
      }
      continue;
    }
    // A tensor split gives every rank a slice of one size (shard.cc); only an expert's split
    // tensor differs by rank (empty off its owners).
    const int64_t same = p.expert_axes.empty() ? shard_for_rank(p, mesh, 0).numel() * bytes : -1;
    for (int64_t r = 0; r < world; ++r) {
      const int64_t b = same >= 0 ? same : shard_for_rank(p, mesh, r).numel() * bytes;
      plan.ranks[r].weight_bytes += b;
      per_rank[r] += b;
      decode_bytes[r] += share * static_cast<double>(b);
    }
  }
  for (auto& rc : plan.ranks) rc.weight_bytes += common;
  for (int64_t r = 0; r < world; ++r) {
    plan.ranks[r].decode_weight_bytes = static_cast<int64_t>(decode_bytes[r] + decode_common);
    plan.ranks[r].decode_eager = eager;
  }
  for (size_t i = 0; i < plan.modules.size(); ++i) {
    int64_t mx = 0;
    for (int64_t b : module_bytes[i]) mx = std::max(mx, b);
    plan.modules[i].weight_bytes_max = module_common[i] + mx;
  }

  // KV cache and FLOPs. Every rank of a group does the same work, so one figure serves all.
  const ModelGraph& graph = plan.graph();
  const int64_t image_tokens = w.images_per_request * graph.workload.tokens_per_image;
  const int64_t prompt = w.prompt_tokens + image_tokens;
  const int64_t context = prompt + w.new_tokens;
  int64_t kv_bytes = 0, kv_query_bytes = 0;
  double flops_prefill = 0, flops_decode = 0;
  double widest = 0;  // the most weight elements per token of one text module: its outputs' width
  for (const ModulePlan& mp : plan.modules) {
    const Module& m = *mp.module;
    const ModuleDims& d = m.dims;
    // Weight elements per token on this rank (matrices only), with experts by top-k.
    // Cross-attention's k and v run over the encoder states once per request (kv_elems).
    double matrix_elems = 0, kv_elems = 0;
    const int64_t g = mesh.group_size(mp.axes);
    for (const Param& p : m.params) {
      if (!is_matrix(p)) continue;
      double elems = static_cast<double>(p.numel());
      // The shared expert's tensors split by the shared expert's mode, the others by the module's.
      const ParallelMode mode = p.shared_expert ? mp.shared_mode : mp.mode;
      const int64_t split = p.shared_expert ? mesh.group_size(mp.shared_axes) : g;
      if (mode == ParallelMode::kTensor && p.tensor_split.type == TensorSplit::Type::kUnits) {
        elems /= std::min<int64_t>(split, p.tensor_split.units);
      }
      if (p.expert >= 0 && d.experts > 0) elems *= static_cast<double>(d.experts_per_token) / d.experts;
      const bool kv_side = m.kind == ModuleKind::kCrossAttention &&
                           (p.role == ParamRole::kKey || p.role == ParamRole::kValue);
      (kv_side ? kv_elems : matrix_elems) += elems;
    }
    if (m.kind == ModuleKind::kEncoder) {
      const int64_t items = m.stream == Stream::kImage ? w.batch * w.images_per_request : w.batch;
      const int64_t per_item = m.stream == Stream::kImage ? graph.workload.encoder_tokens_per_item
                                                          : graph.workload.encoder_tokens_per_clip;
      int64_t split = 1;
      for (size_t x = 0; x < mp.output_layout.axes.size(); ++x) {
        if (mp.output_layout.axes[x] == AxisState::kBatchSplit) split *= mesh.axes()[x].size;
      }
      const int64_t items_here = encoder_item_slice(items, split, 0).count;  // padded to the group
      const int64_t heads = mp.mode == ParallelMode::kTensor ? d.heads / g : d.heads;
      flops_prefill += 2.0 * matrix_elems * items_here * per_item +
                       4.0 * heads * d.head_dim * per_item * per_item * items_here * d.layers;
      continue;
    }
    if (m.stream != Stream::kText) {  // projector
      const int64_t items = w.batch * w.images_per_request;
      int64_t split = 1;
      for (size_t x = 0; x < mp.input_layout.axes.size(); ++x) {
        if (mp.input_layout.axes[x] == AxisState::kBatchSplit) split *= mesh.axes()[x].size;
      }
      flops_prefill += 2.0 * matrix_elems * ((items + split - 1) / split) *
                       graph.workload.tokens_per_image;
      continue;
    }
    int64_t reqs = requests_on_rank(plan, mp.input_layout);
    if (m.kind == ModuleKind::kMoe && mp.mode == ParallelMode::kExpert) {
      // Tokens reach the experts' owners: each rank works on its share of the group's tokens.
      int64_t a2a = 1;
      for (size_t x = 0; x < mp.input_layout.axes.size(); ++x) {
        if (mp.input_layout.axes[x] == AxisState::kBatchSplit &&
            std::find(mp.axes.begin(), mp.axes.end(), mesh.axes()[x].name) != mp.axes.end()) {
          a2a *= mesh.axes()[x].size;
        }
      }
      // Each rank holds experts/g of the routed experts and sees the tokens of the a2a group; the
      // router and a shared expert run on the rank's own tokens (a replicated shared expert whole
      // on the rank that adds it: the busiest rank), split only by the shared expert's tensor mode.
      double routed = 0, own = 0;
      for (const Param& p : m.params) {
        if (!is_matrix(p)) continue;
        double elems = static_cast<double>(p.numel());
        if (p.expert >= 0) {
          routed += elems * static_cast<double>(d.experts_per_token) / d.experts;
          continue;
        }
        if (p.shared_expert && mp.shared_mode == ParallelMode::kTensor &&
            p.tensor_split.type == TensorSplit::Type::kUnits) {
          elems /= std::min<int64_t>(mesh.group_size(mp.shared_axes), p.tensor_split.units);
        }
        own += elems;
      }
      matrix_elems = routed * a2a / std::max<int64_t>(g, 1) + own;
    }
    if (m.kind == ModuleKind::kMoe && d.experts > 0) {
      // A prefill's rows go to their experts (sparse): each token's k copies of its row, their
      // results and weighted sums ([tokens x k, hidden] each) next to one expert's intermediates
      // at a time (its share, k / experts, of the routed experts' elements per token).
      const double h = static_cast<double>(std::max<int64_t>(graph.hidden, 1));
      widest = std::max(widest, 3.0 * d.experts_per_token * h + matrix_elems / h / d.experts);
    } else if (m.kind != ModuleKind::kLmHead && m.kind != ModuleKind::kEmbedding) {
      widest = std::max(widest, matrix_elems / static_cast<double>(std::max<int64_t>(graph.hidden, 1)));
    }
    const int64_t prefill_tokens = m.kind == ModuleKind::kLmHead ? 1 : prompt;
    flops_prefill += 2.0 * matrix_elems * reqs * prefill_tokens;
    flops_decode += 2.0 * matrix_elems * reqs;
    if (m.kind == ModuleKind::kAttention) {
      int64_t qh, kvh;
      heads_on_rank(mp, mesh, qh, kvh);
      kv_bytes += 2 * kvh * d.head_dim * reqs * context * bytes;
      kv_query_bytes += 2 * std::max(qh, kvh) * d.head_dim * reqs * context * bytes;
      // Scores and weighted values: causal, so on average half the prompt in prefill.
      flops_prefill += 4.0 * qh * d.head_dim * reqs * prompt * (prompt / 2.0);
      flops_decode += 4.0 * qh * d.head_dim * reqs * context;
    } else if (m.kind == ModuleKind::kCrossAttention) {
      int64_t qh, kvh;
      heads_on_rank(mp, mesh, qh, kvh);
      const int64_t enc = graph.workload.encoder_tokens_per_clip;
      kv_bytes += 2 * kvh * d.head_dim * reqs * enc * bytes;
      kv_query_bytes += 2 * std::max(qh, kvh) * d.head_dim * reqs * enc * bytes;
      flops_prefill += 2.0 * kv_elems * reqs * enc;
      flops_prefill += 4.0 * qh * d.head_dim * reqs * w.prompt_tokens * enc;
      flops_decode += 4.0 * qh * d.head_dim * reqs * enc;
    }
  }
  // Activations of the prefill, for the requests the rank takes in: the residual stream, the
  // normed input and the module's output ([tokens, hidden] each) next to the widest module's
  // intermediates (its weight elements per token over hidden: q/k/v, gate/up and their product),
  // and the last token's logits (bf16 and their float32 copy).
  const int64_t input_requests = std::max<int64_t>(1, requests_on_rank(plan, plan.input_layout));
  const int64_t activations =
      static_cast<int64_t>(static_cast<double>(input_requests * prompt) * (3.0 * graph.hidden + widest)) * bytes +
      input_requests * graph.vocab * (4 + bytes);
  for (auto& rc : plan.ranks) {
    rc.kv_cache_bytes = kv_bytes;
    rc.activation_bytes = activations;
    rc.decode_rows = input_requests;
    rc.kv_query_bytes = kv_query_bytes;
    rc.flops_prefill = flops_prefill;
    rc.flops_decode = flops_decode;
  }
}

}  // namespace shardplan
