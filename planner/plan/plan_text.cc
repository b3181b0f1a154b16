// Plan -> text table.
#include "planner/plan/plan_text.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include "planner/spec/spec_check.h"

namespace shardplan {

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 4) {
    bytes /= 1024.0;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%.0f B", bytes);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f %s", bytes, units[u]);
  }
  return buf;
}

std::string format_flops(double flops) {
  const char* units[] = {"FLOP", "KFLOP", "MFLOP", "GFLOP", "TFLOP", "PFLOP"};
  int u = 0;
  while (flops >= 1000.0 && u < 5) {
    flops /= 1000.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", flops, units[u]);
  return buf;
}

std::string fold_layer(const std::string& path, int layer) {
  if (layer < 0) return path;
  const std::string needle = "." + std::to_string(layer) + ".";
  auto pos = path.find(needle);
  if (pos == std::string::npos) return path;
  return path.substr(0, pos) + ".*." + path.substr(pos + needle.size());
}

namespace {

struct Row {
  std::string path;
  std::string kind, mode, axes;
  int64_t weight_bytes = 0;
  int first_layer = -1, last_layer = -1, count = 0;
  // (op axes purpose) -> (count, bytes_prefill, bytes_decode) of one instance
  std::map<std::string, std::tuple<int, int64_t, int64_t>> comms;
  std::vector<std::string> comm_order;
};

std::string pad(const std::string& s, size_t n) {
  return s.size() >= n ? s + " " : s + std::string(n - s.size(), ' ');
}

}  // namespace

std::string plan_to_text(const Plan& plan) {
  const Spec& spec = plan.spec();
  const auto& w = spec.workload;
  std::ostringstream out;
  out << "plan: " << (spec.name.empty() ? spec.file : spec.name) << "\n";
  out << "model: " << plan.graph().model_type << ", " << to_string(spec.dtype) << "\n";
  out << "mesh: {";
  for (size_t i = 0; i < plan.mesh.axes().size(); ++i) {
    out << (i ? ", " : "") << plan.mesh.axes()[i].name << ": " << plan.mesh.axes()[i].size;
  }
  out << "}, world size " << plan.world_size() << ", batch axes " << axes_text(spec.batch_axes)
      << "\n";
  out << "workload: batch " << w.batch << ", prompt " << w.prompt_tokens << " tokens";
  if (plan.graph().workload.tokens_per_image > 0) {
    out << " + " << w.images_per_request << " image(s) x " << plan.graph().workload.tokens_per_image
        << " tokens";
  }
  out << ", " << w.new_tokens << " new tokens\n\n";

  // Rows: consecutive groups of identical layers fold into one.
  std::vector<Row> rows;
  std::map<std::string, size_t> row_of;  // fold key -> row index
  std::map<std::string, std::vector<const Collective*>> comms_after;
  for (const Collective& c : plan.comms) comms_after[c.after].push_back(&c);
  // Collectives after an encoder's inner block belong to the encoder's row.
  std::map<std::string, std::string> owner;
  for (const ModulePlan& mp : plan.modules) {
    owner[mp.module->path] = mp.module->path;
    for (const Module& ch : mp.module->children) owner[ch.path] = mp.module->path;
  }
  std::map<std::string, std::vector<const Collective*>> comms_of;
  for (const Collective& c : plan.comms) {
    auto it = owner.find(c.after);
    comms_of[it != owner.end() ? it->second : c.after].push_back(&c);
  }

  for (const ModulePlan& mp : plan.modules) {
    const Module& m = *mp.module;
    const std::string folded = fold_layer(m.path, m.layer);
    // A MoE's shared expert: its own mode after the module's axes ("[ep], shared tensor [tp]").
    std::string axes = axes_text(mp.axes);
    if (mp.has_shared_expert) {
      axes += std::string(", shared ") + to_string(mp.shared_mode) +
              (mp.shared_mode == ParallelMode::kTensor ? " " + axes_text(mp.shared_axes) : "");
    }
    std::string key = folded + "|" + to_string(mp.mode) + "|" + axes + "|" + std::to_string(mp.weight_bytes_max);
    auto it = row_of.find(key);
    Row* row;
    if (it == row_of.end()) {
      row_of[key] = rows.size();
      rows.push_back(Row{});
      row = &rows.back();
      row->path = folded;
      row->kind = to_string(m.kind);
      row->mode = to_string(mp.mode);
      row->axes = axes;
      row->weight_bytes = mp.weight_bytes_max;
      row->first_layer = m.layer;
    } else {
      row = &rows[it->second];
    }
    row->last_layer = m.layer;
    ++row->count;
    for (const Collective* c : comms_of[m.path]) {
      std::string ck = std::string(to_string(c->op)) + " " + axes_text(c->axes) +
                       (*short_purpose(c->purpose) ? std::string(" (") + short_purpose(c->purpose) + ")" : "");
      auto& e = row->comms[ck];
      if (std::get<0>(e) == 0) row->comm_order.push_back(ck);
      std::get<0>(e) += 1;
      std::get<1>(e) = c->bytes_prefill;
      std::get<2>(e) = c->bytes_decode;
    }
  }

  out << pad("module", 46) << pad("layers", 8) << pad("kind", 16) << pad("mode", 10)
      << pad("axes", 10) << pad("weights/rank", 14) << "collectives after it (bytes/rank: prefill, decode step)\n";
  for (const Row& r : rows) {
    std::string layers = r.first_layer < 0 ? "-"
                         : r.first_layer == r.last_layer
                             ? std::to_string(r.first_layer)
                             : std::to_string(r.first_layer) + "-" + std::to_string(r.last_layer);
    std::string weights = format_bytes(static_cast<double>(r.weight_bytes));
    if (r.count > 1) weights += " x" + std::to_string(r.count);
    std::string comms;
    for (const auto& ck : r.comm_order) {
      const auto& [n, bp, bd] = r.comms.at(ck);
      if (!comms.empty()) comms += "; ";
      comms += ck + (n > 1 ? " x" + std::to_string(n) : "") + ": " +
               format_bytes(static_cast<double>(bp)) + ", " + format_bytes(static_cast<double>(bd));
    }
    out << pad(r.path, 46) << pad(layers, 8) << pad(r.kind, 16) << pad(r.mode, 10)
        << pad(r.axes, 10) << pad(weights, 14) << (comms.empty() ? "-" : comms) << "\n";
  }

  int64_t max_w = 0, min_w = INT64_MAX, sum_p = 0, sum_d = 0;
  for (const RankCost& rc : plan.ranks) {
    max_w = std::max(max_w, rc.weight_bytes);
    min_w = std::min(min_w, rc.weight_bytes);
  }
  for (const Collective& c : plan.comms) {
    sum_p += c.bytes_prefill;
    sum_d += c.bytes_decode;
  }
  const RankCost& r0 = plan.ranks.front();
  out << "\ntotals per rank:\n";
  out << "  weights         " << format_bytes(static_cast<double>(max_w));
  if (min_w != max_w) out << " (max; min " << format_bytes(static_cast<double>(min_w)) << ")";
  out << "\n  KV cache        " << format_bytes(static_cast<double>(r0.kv_cache_bytes)) << "\n";
  out << "  activations     " << format_bytes(static_cast<double>(r0.activation_bytes)) << " (prefill)\n";
  int64_t most = 0;
  for (const RankCost& rc : plan.ranks) most = std::max(most, rc.memory_bytes());
  out << "  memory          " << format_bytes(static_cast<double>(most))
      << " (the largest rank: weights + KV cache + activations)\n";
  out << "  FLOPs           prefill " << format_flops(r0.flops_prefill) << ", decode step "
      << format_flops(r0.flops_decode) << "\n";
  out << "  communication   " << plan.comms.size() << " collectives per forward pass; sends "
      << format_bytes(static_cast<double>(sum_p)) << " in prefill, "
      << format_bytes(static_cast<double>(sum_d)) << " per decode step\n";
  return out.str();
}

}  // namespace shardplan
