// Plan -> DOT text, both views (see plan_dot.h for what each one shows).
#include "planner/render/plan_dot.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "planner/plan/plan_text.h"
#include "planner/render/graphviz_render.h"
#include "planner/render/render_error.h"
#include "planner/spec/spec_check.h"

namespace shardplan {

namespace {

constexpr const char* kFont = kPlanFont;  // graphviz_render.h says why
constexpr const char* kCommColor = "#c62828";
constexpr const char* kFlowColor = "#8c8c8c";
constexpr const char* kMutedColor = "#555555";
constexpr const char* kFrameColor = "#b0b0b0";
constexpr const char* kNbsp = "&#160;";      // a space SVG keeps at the start of a text run
constexpr const char* kEnDash = "\u2013";    // –
constexpr const char* kTimes = "\u00d7";     // ×
constexpr const char* kDivide = "\u00f7";    // ÷
constexpr const char* kEllipsis = "\u2026";  // …
constexpr const char* kMiddot = "\u00b7";    // ·
constexpr size_t kMaxColumns = 16;           // rank columns (and mesh columns / rows) shown whole

std::string num(int64_t v) { return std::to_string(v); }

// A quoted DOT id.
std::string dot_id(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string font(const std::string& text, const char* color, int point_size = 0) {
  std::string out = "<font";
  if (color) out += std::string(" color=\"") + color + "\"";
  if (point_size > 0) out += " point-size=\"" + num(point_size) + "\"";
  return out + ">" + text + "</font>";
}

std::string bold(const std::string& text) { return "<b>" + text + "</b>"; }

// A bold word followed by more text on the same line.
// NOTE: Graphviz's built-in metrics (what SVGs are laid out with, see graphviz_render.cc) have no
// bold widths, so a bold run is measured ~10% short and the text after it would touch it. The
// trailing no-break spaces (which SVG keeps, unlike plain leading spaces) make up for that.
std::string bold_lead(const std::string& text) {
  std::string out = bold(text);
  for (size_t i = 0; i < 2 + text.size() / 6; ++i) out += kNbsp;
  return out;
}

// "0–3, 8, 10–11": sorted values with consecutive runs folded.
std::string compress_list(const std::vector<int64_t>& values) {
  std::string out;
  for (size_t i = 0; i < values.size();) {
    size_t j = i;
    while (j + 1 < values.size() && values[j + 1] == values[j] + 1) ++j;
    if (!out.empty()) out += ", ";
    out += num(values[i]);
    if (j > i) out += (j == i + 1 ? ", " : kEnDash) + num(values[j]);
    i = j + 1;
  }
  return out;
}

// "[tp]", or "" for no axes.
std::string axes_label(const std::vector<std::string>& axes) {
  return axes.empty() ? std::string() : axes_text(axes);
}

// What a module's mode does to it, in a few words: "heads ÷ 4", "images ÷ 4, weights whole".
std::string split_summary(const ModulePlan& mp, const Mesh& mesh) {
  const Module& m = *mp.module;
  const int64_t g = mesh.group_size(mp.axes);
  const std::string by = std::string(" ") + kDivide + " " + num(g);
  switch (mp.mode) {
    case ParallelMode::kReplicate:
      return "full copy on every rank";
    case ParallelMode::kData: {
      const std::string items = m.stream == Stream::kImage         ? "images"
                                : m.stream == Stream::kAudio       ? "clips"
                                : m.kind == ModuleKind::kAttention ? "requests + KV cache"
                                                                   : "requests";
      return items + by + ", weights whole";
    }
    case ParallelMode::kTensor:
      switch (m.kind) {
        case ModuleKind::kEmbedding:
        case ModuleKind::kLmHead:
          return "vocabulary" + by;
        case ModuleKind::kAttention: {
          std::string s = "heads" + by;
          if (m.dims.kv_heads > 0 && g > m.dims.kv_heads) {
            s += ", each KV head on " + num(g / m.dims.kv_heads) + " ranks";
          }
          return s;
        }
        case ModuleKind::kCrossAttention:
          return "heads" + by;
        case ModuleKind::kMlp:
          return "intermediate" + by;
        case ModuleKind::kMoe:
          return "every expert's intermediate" + by;
        case ModuleKind::kEncoder:
          return "every layer's heads" + by;
        case ModuleKind::kProjector:
          return "hidden" + by;
      }
      return "split" + by;
    case ParallelMode::kExpert: {
      const int64_t e = m.dims.experts;
      return num(e) + " experts" + by + " = " + num(g > 0 ? e / g : e) + " per rank";
    }
  }
  return "";
}

std::string spec_title(const Plan& plan) {
  const Spec& spec = plan.spec();
  if (!spec.name.empty()) return spec.name;
  const auto slash = spec.file.find_last_of('/');
  return slash == std::string::npos ? spec.file : spec.file.substr(slash + 1);
}

std::string mesh_text(const Mesh& mesh) {
  std::string out = "{";
  for (size_t i = 0; i < mesh.axes().size(); ++i) {
    out += (i ? ", " : "") + mesh.axes()[i].name + ": " + num(mesh.axes()[i].size);
  }
  return out + "}";
}

// Graph attributes and the title shared by both views.
void write_header(std::ostringstream& out, const Plan& plan, const std::string& subtitle) {
  const Spec& spec = plan.spec();
  const auto& w = spec.workload;
  std::string workload = "batch " + num(w.batch) + ", prompt " + num(w.prompt_tokens) + " tokens";
  if (plan.graph().workload.tokens_per_image > 0) {
    workload += " + " + num(w.images_per_request * plan.graph().workload.tokens_per_image) +
                " image tokens";
  }
  workload += ", " + num(w.new_tokens) + " new tokens";
  std::string line2 = plan.graph().model_type + " " + kMiddot + " " + to_string(spec.dtype) + " " +
                      kMiddot + " mesh " + mesh_text(plan.mesh) + " = " + num(plan.world_size()) +
                      (plan.world_size() == 1 ? " rank" : " ranks");
  if (!spec.batch_axes.empty()) line2 += ", requests split over " + axes_text(spec.batch_axes);
  line2 += " " + std::string(kMiddot) + " " + workload;

  out << "digraph plan {\n";
  out << "  graph [fontname=\"" << kFont << "\", fontsize=12, bgcolor=\"white\", pad=0.3, "
      << "rankdir=TB, nodesep=0.4, ranksep=0.5, newrank=true, labelloc=t, labeljust=l,\n";
  // NOTE: at most 14 inches (1344 px) wide: a wider picture (a ranks view of many columns) is
  // scaled down to fit a browser window or a README column rather than cut off.
  out << "    size=\"14,40\",\n";
  out << "    label=<<table border=\"0\" cellborder=\"0\" cellspacing=\"0\" cellpadding=\"2\">"
      << "<tr><td align=\"left\">" << font(bold(html_escape(spec_title(plan))), nullptr, 16)
      << "</td></tr><tr><td align=\"left\">" << font(html_escape(line2), kMutedColor, 11)
      << "</td></tr><tr><td align=\"left\">" << font(html_escape(subtitle), kMutedColor, 11)
      << "</td></tr><tr><td></td></tr></table>>];\n";
  out << "  node [fontname=\"" << kFont << "\", fontsize=11, shape=box, style=\"rounded,filled\", "
      << "penwidth=1.5, margin=\"0.12,0.06\"];\n";
  out << "  edge [fontname=\"" << kFont << "\", fontsize=10, color=\"" << kFlowColor
      << "\", penwidth=1.2, arrowsize=0.8];\n";
}

// The legend: mode colours and what an edge means.
std::string legend_table(bool with_edges) {
  std::ostringstream t;
  t << "<table border=\"1\" color=\"" << kFrameColor
    << "\" cellborder=\"0\" cellspacing=\"2\" cellpadding=\"3\">";
  t << "<tr><td colspan=\"2\" align=\"left\">" << bold_lead("mode")
    << "(the colour of a module)</td></tr>";
  const std::pair<ParallelMode, const char*> modes[] = {
      {ParallelMode::kReplicate, "full copy of the weights on every rank"},
      {ParallelMode::kTensor, "weights split; partial results combined"},
      {ParallelMode::kData, "requests (or images) split; weights whole"},
      {ParallelMode::kExpert, "experts split; tokens sent to their experts"},
  };
  for (const auto& [mode, text] : modes) {
    const ModeColors c = mode_colors(mode);
    t << "<tr><td border=\"1\" color=\"" << c.border << "\" bgcolor=\"" << c.fill << "\">"
      << bold(to_string(mode)) << "</td><td align=\"left\">" << html_escape(text) << "</td></tr>";
  }
  if (with_edges) {
    t << "<tr><td>" << font(bold("&#8594;"), kCommColor, 16) << "</td><td align=\"left\">"
      << font("collective: op [axes], bytes each rank sends", kCommColor) << "</td></tr>";
    t << "<tr><td>" << font("&#8594;", kFlowColor, 16)
      << "</td><td align=\"left\">data flow, no communication</td></tr>";
  }
  t << "</table>";
  return t.str();
}

// The first `head` and last `tail` of n indices with a -1 ("...") between them when n is larger
// than kMaxColumns.
std::vector<int64_t> capped_indices(int64_t n, int64_t head, int64_t tail) {
  std::vector<int64_t> out;
  if (n <= static_cast<int64_t>(kMaxColumns)) {
    for (int64_t i = 0; i < n; ++i) out.push_back(i);
    return out;
  }
  for (int64_t i = 0; i < head; ++i) out.push_back(i);
  out.push_back(-1);
  for (int64_t i = n - tail; i < n; ++i) out.push_back(i);
  return out;
}

// The mesh as a grid of rank numbers: the last axis across, the other axes down.
// {dp: 2, tp: 4}:      tp 0  tp 1  tp 2  tp 3
//              dp 0      0     1     2     3
//              dp 1      4     5     6     7
std::string mesh_table(const Mesh& mesh) {
  const auto& axes = mesh.axes();
  const MeshAxis& last = axes.back();
  const int64_t cols = last.size;
  const int64_t rows = mesh.world_size() / cols;
  const std::vector<int64_t> col_idx = capped_indices(cols, kMaxColumns - 2, 1);
  const std::vector<int64_t> row_idx = capped_indices(rows, kMaxColumns - 2, 1);
  std::string sizes, names;
  for (size_t i = 0; i < axes.size(); ++i) {
    names += (i ? std::string(" ") + kTimes + " " : "") + axes[i].name;
    sizes += (i ? std::string(" ") + kTimes + " " : "") + num(axes[i].size);
  }
  std::string title = bold_lead("mesh") + html_escape(names);
  if (axes.size() > 1) title += " = " + sizes;
  title += " = " + num(mesh.world_size()) + (mesh.world_size() == 1 ? " rank" : " ranks");

  // The grid is a table of its own inside the frame, so the title's width does not stretch its
  // columns.
  std::ostringstream t;
  t << "<table border=\"1\" color=\"" << kFrameColor
    << "\" cellborder=\"0\" cellspacing=\"0\" cellpadding=\"4\">";
  t << "<tr><td align=\"left\">" << title << "</td></tr>";
  t << "<tr><td align=\"left\"><table border=\"0\" cellborder=\"1\" cellspacing=\"0\" "
    << "cellpadding=\"4\" color=\"" << kFrameColor << "\">";
  t << "<tr><td border=\"0\"></td>";
  for (int64_t c : col_idx) {
    t << "<td border=\"0\">"
      << font(c < 0 ? kEllipsis : html_escape(last.name) + " " + num(c), kMutedColor, 10)
      << "</td>";
  }
  t << "</tr>";
  for (int64_t r : row_idx) {
    t << "<tr><td border=\"0\" align=\"right\">";
    if (r < 0) {
      t << font(kEllipsis, kMutedColor, 10);
    } else if (axes.size() > 1) {
      // The coordinates of the row over the leading axes.
      const std::vector<int64_t> co = mesh.coords(r * cols);
      std::string label;
      for (size_t a = 0; a + 1 < axes.size(); ++a) {
        label += (a ? std::string(" ") + kMiddot + " " : "") + html_escape(axes[a].name) + " " +
                 num(co[a]);
      }
      t << font(label, kMutedColor, 10);
    }
    t << "</td>";
    for (int64_t c : col_idx) {
      t << "<td>" << (r < 0 || c < 0 ? std::string(kEllipsis) : num(r * cols + c)) << "</td>";
    }
    t << "</tr>";
  }
  std::string note = "each row is one [" + last.name + "] group";
  if (axes.size() == 1) note = "one [" + last.name + "] group";
  if (axes.size() == 2) note += ", each column one [" + axes[0].name + "] group";
  t << "</table></td></tr>";
  t << "<tr><td align=\"left\">" << font(html_escape(note), kMutedColor, 10) << "</td></tr>";
  t << "</table>";
  return t.str();
}

// The legend and the mesh side by side, above the picture (an invisible edge from "mesh" to the
// first node keeps them there).
void write_key(std::ostringstream& out, const Plan& plan, bool with_edges) {
  out << "  legend [shape=plain, style=\"\", label=<" << legend_table(with_edges) << ">];\n";
  out << "  mesh [shape=plain, style=\"\", label=<" << mesh_table(plan.mesh) << ">];\n";
  out << "  { rank=same; legend; mesh; }\n";
  out << "  legend -> mesh [style=invis];\n";
}

// ---------------------------------------------------------------------------------------------
// Modules view.

struct Node {
  std::string id;
  int module = -1;    // index into plan.modules of the first module it stands for
  int count = 1;      // layers folded into it
  int run = -1;       // index into runs, -1 outside the layers
  int position = 0;   // position inside its layer
  std::string title;  // path shown
};

// Consecutive layers whose modules all have the same path (layer index folded), kind, mode, axes
// and weight bytes.
struct LayerRun {
  int first = 0, last = 0;
  std::string folded_prefix;  // "model.layers.*"
};

enum class EdgeKind { kFlow, kKv, kMerge };

// Collectives on one edge are counted per distinct (op, axes, purpose, bytes).
using CommKey = std::tuple<std::string, std::string, std::string, int64_t, int64_t>;

struct Edge {
  std::string from, to;
  EdgeKind kind = EdgeKind::kFlow;
  bool back = false;  // to the next layer of the same run
  std::vector<CommKey> comm_order;
  std::map<CommKey, int> comm_count;
};

std::string layer_prefix(const std::string& path, int layer) {
  const std::string needle = "." + num(layer) + ".";
  const auto pos = path.find(needle);
  if (pos == std::string::npos) return "";
  return path.substr(0, pos + needle.size());
}

std::string comm_lines(const CommKey& key, int count, bool self_loop) {
  const auto& [op, axes, purpose, prefill, decode] = key;
  std::string head = (self_loop ? "inside: " : "") + bold_lead(op) + html_escape(axes);
  if (!purpose.empty()) head += " " + purpose;
  if (count > 1) head += " " + std::string(kTimes) + num(count);
  std::string bytes;
  if (decode > 0 || prefill == 0) {
    bytes = format_bytes(static_cast<double>(decode)) + " / decode step";
  } else {
    bytes = format_bytes(static_cast<double>(prefill)) + " in prefill only";
  }
  if (count > 1) bytes += " each";
  return font(head, kCommColor) + "<br/>" + font(bytes, kCommColor);
}

std::string module_label(const Node& n, const ModulePlan& mp, const Mesh& mesh,
                         const std::optional<std::string>& tied_to) {
  const ModeColors c = mode_colors(mp.mode);
  std::ostringstream t;
  t << "<table border=\"0\" cellborder=\"0\" cellspacing=\"0\" cellpadding=\"1\">";
  t << "<tr><td align=\"left\">" << font(bold(to_string(mp.module->kind)), nullptr, 13) << "</td>"
    << "<td align=\"right\">"
    << (n.count > 1 ? std::string(kNbsp) + kNbsp +
                          font(bold(std::string(kTimes) + num(n.count)), kMutedColor, 12)
                    : "")
    << "</td></tr>";
  t << "<tr><td align=\"left\" colspan=\"2\">" << font(html_escape(n.title), kMutedColor, 10)
    << "</td></tr>";
  std::string mode = mp.axes.empty()
                         ? bold(to_string(mp.mode))
                         : bold_lead(to_string(mp.mode)) + html_escape(axes_label(mp.axes));
  t << "<tr><td align=\"left\" colspan=\"2\">" << font(mode, c.border, 12) << "</td></tr>";
  if (mp.has_shared_expert) {
    const std::string shared = std::string("shared expert: ") + to_string(mp.shared_mode) +
                               (mp.shared_mode == ParallelMode::kTensor ? " " + axes_label(mp.shared_axes) : "");
    t << "<tr><td align=\"left\" colspan=\"2\">" << font(html_escape(shared), c.border, 10) << "</td></tr>";
  }
  t << "<tr><td align=\"left\" colspan=\"2\">" << html_escape(split_summary(mp, mesh))
    << "</td></tr>";
  t << "<tr><td align=\"left\" colspan=\"2\">"
    << html_escape(format_bytes(static_cast<double>(mp.weight_bytes_max))) << " weights / rank"
    << "</td></tr>";
  if (mp.module->kind == ModuleKind::kLmHead && tied_to) {
    t << "<tr><td align=\"left\" colspan=\"2\">"
      << font(html_escape("uses " + *tied_to + " (tied)"), kMutedColor, 10) << "</td></tr>";
  }
  t << "</table>";
  return t.str();
}

std::string modules_dot(const Plan& plan) {
  const auto& modules = plan.modules;
  const Spec& spec = plan.spec();

  // Layer runs.
  std::vector<int> layer_order;
  std::map<int, std::vector<int>> layer_modules;
  for (size_t i = 0; i < modules.size(); ++i) {
    const int l = modules[i].module->layer;
    if (l < 0) continue;
    if (!layer_modules.count(l)) layer_order.push_back(l);
    layer_modules[l].push_back(static_cast<int>(i));
  }
  auto signature = [&](int l) {
    std::string s;
    for (int i : layer_modules[l]) {
      const ModulePlan& mp = modules[i];
      s += fold_layer(mp.module->path, l) + "|" + to_string(mp.module->kind) + "|" +
           to_string(mp.mode) + "|" + axes_label(mp.axes) + "|" + to_string(mp.shared_mode) + "|" +
           axes_label(mp.shared_axes) + "|" + num(mp.weight_bytes_max) + ";";
    }
    return s;
  };
  std::vector<LayerRun> runs;
  std::map<int, int> run_of_layer;
  for (size_t k = 0; k < layer_order.size(); ++k) {
    const int l = layer_order[k];
    if (!runs.empty() && runs.back().last + 1 == l &&
        signature(runs.back().first) == signature(l)) {
      runs.back().last = l;
    } else {
      LayerRun r;
      r.first = r.last = l;
      const std::string prefix = layer_prefix(modules[layer_modules[l].front()].module->path, l);
      r.folded_prefix = prefix.empty() ? "" : fold_layer(prefix, l);
      if (!r.folded_prefix.empty() && r.folded_prefix.back() == '.') r.folded_prefix.pop_back();
      runs.push_back(r);
    }
    run_of_layer[l] = static_cast<int>(runs.size()) - 1;
  }

  // Nodes, in execution order.
  std::vector<Node> nodes;
  std::map<std::string, size_t> node_index;  // id -> index into nodes
  std::vector<std::string> node_of_module(modules.size());
  for (size_t i = 0; i < modules.size(); ++i) {
    const Module& m = *modules[i].module;
    Node n;
    n.module = static_cast<int>(i);
    if (m.layer < 0) {
      n.id = m.path;
      n.title = m.path;
    } else {
      const int r = run_of_layer[m.layer];
      const LayerRun& run = runs[r];
      const auto& in_layer = layer_modules[m.layer];
      n.run = r;
      n.position = static_cast<int>(
          std::find(in_layer.begin(), in_layer.end(), static_cast<int>(i)) - in_layer.begin());
      n.count = run.last - run.first + 1;
      const std::string folded = fold_layer(m.path, m.layer);
      n.id = folded + "@" + num(run.first) + "-" + num(run.last);
      const std::string prefix = layer_prefix(m.path, m.layer);
      n.title = prefix.empty() ? folded : m.path.substr(prefix.size());
    }
    node_of_module[i] = n.id;
    if (!node_index.count(n.id)) {
      node_index[n.id] = nodes.size();
      nodes.push_back(n);
    }
  }

  // Input and output nodes.
  const auto& w = spec.workload;
  std::string batch_note;
  if (!spec.batch_axes.empty()) {
    batch_note =
        "<br/>" + font(html_escape("split over " + axes_text(spec.batch_axes)), kMutedColor, 10);
  }
  auto input_id = [](Stream s) { return std::string("input:") + to_string(s); };
  auto input_label = [&](Stream s) {
    switch (s) {
      case Stream::kText:
        return bold("text tokens") + "<br/>" +
               html_escape(num(w.batch) + " requests " + kTimes + " " + num(w.prompt_tokens) +
                           " prompt tokens") +
               batch_note;
      case Stream::kImage:
        return bold("images") + "<br/>" +
               html_escape(num(w.batch * w.images_per_request) + " (" + num(w.images_per_request) +
                           " per request)") +
               batch_note;
      case Stream::kAudio:
        return bold("audio clips") + "<br/>" + html_escape(num(w.batch) + " (one per request)") +
               batch_note;
    }
    return std::string();
  };
  const std::string output_id = "output";

  // Data-flow edges, in execution order, deduplicated onto the folded nodes.
  std::vector<Edge> edges;
  std::map<std::pair<std::string, std::string>, size_t> edge_index;
  std::set<Stream> used_inputs;
  auto add_edge = [&](const std::string& from, const std::string& to, EdgeKind kind) {
    const auto key = std::make_pair(from, to);
    if (edge_index.count(key)) return;
    Edge e;
    e.from = from;
    e.to = to;
    e.kind = kind;
    auto fi = node_index.find(from), ti = node_index.find(to);
    if (fi != node_index.end() && ti != node_index.end()) {
      const Node& a = nodes[fi->second];
      const Node& b = nodes[ti->second];
      e.back = a.run >= 0 && a.run == b.run && b.position <= a.position;
    }
    edge_index[key] = edges.size();
    edges.push_back(e);
  };
  std::map<Stream, std::string> last;
  auto last_of = [&](Stream s) {
    auto it = last.find(s);
    if (it != last.end()) return it->second;
    used_inputs.insert(s);
    return input_id(s);
  };
  for (size_t i = 0; i < modules.size(); ++i) {
    const Module& m = *modules[i].module;
    const std::string& id = node_of_module[i];
    // The plan names the second stream a module reads: merged image features or encoder states.
    if (modules[i].side_stream) {
      add_edge(last_of(*modules[i].side_stream), id, modules[i].merges_side ? EdgeKind::kMerge : EdgeKind::kKv);
    }
    add_edge(last_of(m.stream), id, EdgeKind::kFlow);
    last[m.stream] = id;
  }
  add_edge(last_of(Stream::kText), output_id, EdgeKind::kFlow);

  // Collectives onto edges. Those after an encoder's inner block belong to the encoder's node.
  std::map<std::string, std::string> node_of_path;
  for (size_t i = 0; i < modules.size(); ++i) {
    node_of_path[modules[i].module->path] = node_of_module[i];
    for (const Module& ch : modules[i].module->children) node_of_path[ch.path] = node_of_module[i];
  }
  for (const Collective& c : plan.comms) {
    std::string from = c.after == "input" ? input_id(c.stream) : node_of_path[c.after];
    std::string to = c.before.empty() || c.before == "output" ? output_id : node_of_path[c.before];
    if (from.empty()) from = input_id(c.stream);
    if (to.empty()) to = output_id;
    if (from == input_id(c.stream)) used_inputs.insert(c.stream);
    add_edge(from, to, EdgeKind::kFlow);
    Edge& e = edges[edge_index[{from, to}]];
    const CommKey key{to_string(c.op), axes_text(c.axes), short_purpose(c.purpose), c.bytes_prefill,
                      c.bytes_decode};
    if (!e.comm_count.count(key)) e.comm_order.push_back(key);
    ++e.comm_count[key];
  }

  // Totals for the subtitle.
  int64_t max_w = 0, sum_p = 0, sum_d = 0;
  for (const RankCost& rc : plan.ranks) max_w = std::max(max_w, rc.weight_bytes);
  for (const Collective& c : plan.comms) {
    sum_p += c.bytes_prefill;
    sum_d += c.bytes_decode;
  }
  const int64_t kv = plan.ranks.empty() ? 0 : plan.ranks.front().kv_cache_bytes;
  const std::string subtitle =
      "per rank: weights " + format_bytes(static_cast<double>(max_w)) + " " + kMiddot +
      " KV cache " + format_bytes(static_cast<double>(kv)) + " " + kMiddot + " " +
      num(static_cast<int64_t>(plan.comms.size())) + " collectives per forward pass, sending " +
      format_bytes(static_cast<double>(sum_d)) + " per decode step and " +
      format_bytes(static_cast<double>(sum_p)) + " in prefill";

  std::ostringstream out;
  write_header(out, plan, subtitle);
  write_key(out, plan, true);

  // Inputs first (top row), then modules, clusters for layer runs, then the output.
  for (Stream s : {Stream::kImage, Stream::kAudio, Stream::kText}) {
    if (!used_inputs.count(s)) continue;
    out << "  " << dot_id(input_id(s)) << " [style=\"rounded\", color=\"" << kFlowColor
        << "\", label=<" << input_label(s) << ">];\n";
  }
  auto write_node = [&](const Node& n, const std::string& indent) {
    const ModulePlan& mp = modules[n.module];
    const ModeColors c = mode_colors(mp.mode);
    out << indent << dot_id(n.id) << " [fillcolor=\"" << c.fill << "\", color=\"" << c.border
        << "\", label=<" << module_label(n, mp, plan.mesh, plan.graph().tied_lm_head_to) << ">];\n";
  };
  int open_run = -1;
  for (const Node& n : nodes) {
    if (n.run != open_run) {
      if (open_run >= 0) out << "  }\n";
      open_run = n.run;
      if (open_run >= 0) {
        const LayerRun& r = runs[open_run];
        const int count = r.last - r.first + 1;
        std::string title = count == 1 ? "layer " + num(r.first)
                                       : "layers " + num(r.first) + kEnDash + num(r.last) + "  " +
                                             kTimes + num(count);
        out << "  subgraph " << dot_id("cluster_layers_" + num(r.first) + "_" + num(r.last))
            << " {\n";
        out << "    graph [style=\"rounded,dashed\", labeljust=r, color=\"" << kFrameColor
            << "\", margin=14, label=<" << font(bold(html_escape(title)), nullptr, 13) << "<br/>"
            << font(html_escape(r.folded_prefix + (count > 1 ? ", identical layers folded" : "")),
                    kMutedColor, 10)
            << ">];\n";
      }
    }
    write_node(n, open_run >= 0 ? "    " : "  ");
  }
  if (open_run >= 0) out << "  }\n";
  out << "  " << dot_id(output_id) << " [style=\"rounded\", color=\"" << kFlowColor << "\", label=<"
      << bold("logits") << "<br/>" << html_escape("whole on the ranks that hold the request")
      << ">];\n";
  out << "  mesh -> " << dot_id(nodes.empty() ? output_id : nodes.front().id)
      << " [style=invis];\n";

  // An edge into a module that splits a replicated stream over some axes carries no collective:
  // each rank keeps its own requests (or items). Say so, as the layout changes there.
  ActivationLayout start;
  for (const auto& a : plan.mesh.axes()) {
    const bool batch =
        std::find(spec.batch_axes.begin(), spec.batch_axes.end(), a.name) != spec.batch_axes.end();
    start.axes.push_back(batch ? AxisState::kBatchSplit : AxisState::kReplicated);
  }
  auto splits_locally = [&](const Edge& e) {
    if (!e.comm_order.empty() || e.kind != EdgeKind::kFlow) return false;
    const auto ti = node_index.find(e.to);
    if (ti == node_index.end()) return false;
    const ModulePlan& dst = modules[nodes[ti->second].module];
    const auto fi = node_index.find(e.from);
    const ActivationLayout& src =
        fi == node_index.end() ? start : modules[nodes[fi->second].module].output_layout;
    for (size_t x = 0; x < src.axes.size() && x < dst.input_layout.axes.size(); ++x) {
      if (src.axes[x] == AxisState::kReplicated &&
          dst.input_layout.axes[x] == AxisState::kBatchSplit) {
        return true;
      }
    }
    return false;
  };

  for (const Edge& e : edges) {
    const bool comm = !e.comm_order.empty();
    const bool self_loop = e.from == e.to;
    std::string label;
    for (const CommKey& k : e.comm_order) {
      if (!label.empty()) label += "<br/>";
      label += comm_lines(k, e.comm_count.at(k), self_loop);
    }
    std::string note;
    if (e.kind == EdgeKind::kKv) note = "encoder states: k/v input of every layer";
    if (e.kind == EdgeKind::kMerge) note = "image features join the text";
    if (e.back) note = "to the next layer";
    if (splits_locally(e)) {
      const Stream s = modules[nodes[node_index.at(e.to)].module].module->stream;
      note = std::string(s == Stream::kImage   ? "images"
                         : s == Stream::kAudio ? "clips"
                                               : "requests") +
             " split locally, no communication";
    }
    if (!note.empty()) {
      label +=
          (label.empty() ? "" : "<br/>") + font("<i>" + html_escape(note) + "</i>", kMutedColor, 9);
    }
    out << "  " << dot_id(e.from) << " -> " << dot_id(e.to);
    std::vector<std::string> attrs;
    if (comm) {
      attrs.push_back(std::string("color=\"") + kCommColor + "\"");
      attrs.push_back("penwidth=2.5");
    }
    if (e.kind == EdgeKind::kKv) attrs.push_back("style=dashed");
    if (e.back) {
      attrs.push_back("constraint=false");
      attrs.push_back("tailport=e");
      attrs.push_back("headport=e");
    }
    if (self_loop) {
      attrs.push_back("tailport=e");
      attrs.push_back("headport=e");
    }
    if (!label.empty()) attrs.push_back("label=<" + label + ">");
    for (size_t i = 0; i < attrs.size(); ++i) out << (i ? ", " : " [") << attrs[i];
    out << (attrs.empty() ? ";\n" : "];\n");
  }
  out << "}\n";
  return out.str();
}

// ---------------------------------------------------------------------------------------------
// Ranks view.

// One row of the table: a tensor, or the same tensor of every expert of a moe module.
struct TensorRow {
  std::string name;  // relative to the layer: "self_attn.q_proj.weight"
  const ParamPlan* first = nullptr;
  std::vector<const ParamPlan*> experts;  // expert rows: one per expert, in expert order
};

// "model.layers.0.block_sparse_moe.experts.3.w1.weight" -> "...experts.*.w1.weight".
std::string fold_expert(const std::string& name, int expert) {
  const std::string needle = ".experts." + num(expert) + ".";
  const auto pos = name.find(needle);
  if (pos == std::string::npos) return name;
  return name.substr(0, pos) + ".experts.*." + name.substr(pos + needle.size());
}

std::string cell_text(const TensorRow& row, const Mesh& mesh, int64_t rank) {
  if (row.experts.empty()) {
    return slice_text(row.first->param->shape, shard_for_rank(*row.first, mesh, rank));
  }
  // Expert rows: which experts the rank holds, and the slice when not whole.
  std::map<std::string, std::vector<int64_t>> by_slice;
  std::vector<std::string> order;
  for (const ParamPlan* p : row.experts) {
    const std::string s = slice_text(p->param->shape, shard_for_rank(*p, mesh, rank));
    if (s == "\u2014") continue;
    if (!by_slice.count(s)) order.push_back(s);
    by_slice[s].push_back(p->param->expert);
  }
  if (order.empty()) return "\u2014";
  std::string out;
  for (const std::string& s : order) {
    const auto& ex = by_slice[s];
    if (!out.empty()) out += "; ";
    out += (ex.size() == 1 ? "expert " : "experts ") + compress_list(ex);
    if (s != "whole") out += ": " + s;
  }
  return out;
}

std::string ranks_dot(const Plan& plan, const DotOptions& options) {
  const Mesh& mesh = plan.mesh;
  int first_layer = -1;
  int max_layer = -1;
  for (const ModulePlan& mp : plan.modules) {
    if (mp.module->layer < 0) continue;
    if (first_layer < 0) first_layer = mp.module->layer;
    max_layer = std::max(max_layer, mp.module->layer);
  }
  if (first_layer < 0) throw RenderError("the ranks view needs a model with layers");
  const int layer = options.layer.value_or(first_layer);
  std::vector<int> layer_modules;
  for (size_t i = 0; i < plan.modules.size(); ++i) {
    if (plan.modules[i].module->layer == layer) layer_modules.push_back(static_cast<int>(i));
  }
  if (layer_modules.empty()) {
    throw RenderError("layer " + num(layer) + " is not in the model: its layers are " +
                      num(first_layer) + "-" + num(max_layer));
  }
  const std::string prefix = layer_prefix(plan.modules[layer_modules.front()].module->path, layer);

  // Rows per module, expert tensors folded.
  std::map<int, std::vector<TensorRow>> rows;  // module index -> rows
  for (const ParamPlan& p : plan.params) {
    if (plan.modules[p.module].module->layer != layer) continue;
    auto& list = rows[p.module];
    std::string name = p.param->name;
    if (!prefix.empty() && name.compare(0, prefix.size(), prefix) == 0) {
      name = name.substr(prefix.size());
    }
    if (p.param->expert >= 0) {
      name = fold_expert(name, p.param->expert);
      auto it = std::find_if(list.begin(), list.end(), [&](const TensorRow& r) {
        return r.name == name && !r.experts.empty();
      });
      if (it != list.end()) {
        it->experts.push_back(&p);
        continue;
      }
      list.push_back(TensorRow{name, &p, {&p}});
      continue;
    }
    list.push_back(TensorRow{name, &p, {}});
  }

  // Cells, and the columns: ranks that hold the same slice of every tensor share one.
  std::vector<std::vector<std::string>> cells;  // per row, per rank
  std::vector<std::pair<int, const TensorRow*>> row_list;
  for (int mi : layer_modules) {
    for (const TensorRow& r : rows[mi]) {
      row_list.push_back({mi, &r});
      std::vector<std::string> c;
      for (int64_t rank = 0; rank < mesh.world_size(); ++rank)
        c.push_back(cell_text(r, mesh, rank));
      cells.push_back(std::move(c));
    }
  }
  std::vector<std::vector<int64_t>> columns;  // ranks per column, ordered by their first rank
  {
    std::map<std::vector<std::string>, size_t> column_of;
    for (int64_t rank = 0; rank < mesh.world_size(); ++rank) {
      std::vector<std::string> sig;
      for (const auto& c : cells) sig.push_back(c[rank]);
      auto it = column_of.find(sig);
      if (it == column_of.end()) {
        column_of[sig] = columns.size();
        columns.push_back({rank});
      } else {
        columns[it->second].push_back(rank);
      }
    }
  }
  const std::vector<int64_t> shown =
      capped_indices(static_cast<int64_t>(columns.size()), kMaxColumns - 4, 3);

  std::ostringstream t;
  const size_t span = 3 + shown.size();
  t << "<table border=\"1\" color=\"" << kFrameColor
    << "\" cellborder=\"1\" cellspacing=\"0\" cellpadding=\"4\">";
  // Header: which ranks a column stands for, and the mesh coordinates they share.
  t << "<tr><td align=\"left\" rowspan=\"2\">" << bold("tensor") << "</td><td rowspan=\"2\">"
    << bold("shape") << "</td><td rowspan=\"2\">" << bold("split") << "</td>";
  for (int64_t c : shown) {
    t << "<td>";
    if (c < 0) {
      t << kEllipsis;
    } else {
      const auto& ranks = columns[c];
      std::string label;
      if (ranks.size() == static_cast<size_t>(mesh.world_size()) && ranks.size() > 1) {
        label = "all ranks";
      } else if (ranks.size() == 1) {
        label = "rank " + num(ranks[0]);
      } else if (ranks.size() <= 6) {
        label = "ranks " + compress_list(ranks);
      } else {
        label = "ranks " + num(ranks[0]) + ", " + num(ranks[1]) + ", " + kEllipsis + " (" +
                num(static_cast<int64_t>(ranks.size())) + ")";
      }
      t << bold(label);
    }
    t << "</td>";
  }
  t << "</tr><tr>";
  for (int64_t c : shown) {
    std::string coords;
    if (c >= 0) {
      const auto& ranks = columns[c];
      const std::vector<int64_t> first = mesh.coords(ranks[0]);
      for (size_t a = 0; a < mesh.axes().size(); ++a) {
        bool same = true;
        for (int64_t r : ranks) same = same && mesh.coords(r)[a] == first[a];
        if (!same || (mesh.axes()[a].size == 1 && mesh.axes().size() > 1)) continue;
        coords += (coords.empty() ? "" : std::string(" ") + kMiddot + " ") +
                  html_escape(mesh.axes()[a].name) + " " + num(first[a]);
      }
    }
    // NOTE: Graphviz refuses an empty <font> element: a column whose ranks share no coordinate
    // (all ranks of a data-parallel plan) gets a no-break space.
    t << "<td>" << font(coords.empty() ? std::string(kNbsp) : coords, kMutedColor, 10) << "</td>";
  }
  t << "</tr>";

  int current_module = -1;
  for (size_t ri = 0; ri < row_list.size(); ++ri) {
    const int mi = row_list[ri].first;
    const TensorRow& row = *row_list[ri].second;
    const ModulePlan& mp = plan.modules[mi];
    const ModeColors colors = mode_colors(mp.mode);
    if (mi != current_module) {
      current_module = mi;
      const std::string path = layer_prefix(mp.module->path, layer).empty()
                                   ? mp.module->path
                                   : mp.module->path.substr(prefix.size());
      std::string head = bold_lead(to_string(mp.module->kind));
      if (path != to_string(mp.module->kind)) head += html_escape(path) + " " + kMiddot + " ";
      head += mp.axes.empty() ? bold(to_string(mp.mode))
                              : bold_lead(to_string(mp.mode)) + html_escape(axes_label(mp.axes));
      if (mp.has_shared_expert) {
        head += html_escape(std::string(", shared expert ") + to_string(mp.shared_mode) +
                            (mp.shared_mode == ParallelMode::kTensor ? " " + axes_label(mp.shared_axes) : ""));
      }
      head += " " + std::string(kMiddot) + " " + html_escape(split_summary(mp, mesh)) + " " +
              kMiddot + " " + html_escape(format_bytes(static_cast<double>(mp.weight_bytes_max))) +
              " weights / rank";
      t << "<tr><td colspan=\"" << span << "\" align=\"left\" bgcolor=\"" << colors.fill << "\">"
        << head << "</td></tr>";
    }
    std::string shape = "[";
    for (size_t d = 0; d < row.first->param->shape.size(); ++d) {
      shape += (d ? ", " : "") + num(row.first->param->shape[d]);
    }
    shape += "]";
    std::string split = row.first->layout.to_string();
    if (!row.experts.empty() && !row.first->expert_axes.empty()) {
      split = "experts over " + axes_text(row.first->expert_axes);
    }
    t << "<tr><td align=\"left\">" << html_escape(row.name) << "</td><td>" << html_escape(shape)
      << "</td><td>" << html_escape(split) << "</td>";
    // Rank cells; equal neighbours (not across the "..." column) merge into one.
    for (size_t k = 0; k < shown.size();) {
      if (shown[k] < 0) {
        t << "<td>" << kEllipsis << "</td>";
        ++k;
        continue;
      }
      const std::string& text = cells[ri][columns[shown[k]][0]];
      size_t j = k;
      while (j + 1 < shown.size() && shown[j + 1] >= 0 &&
             cells[ri][columns[shown[j + 1]][0]] == text) {
        ++j;
      }
      const bool none = text == "\u2014";
      t << "<td";
      if (j > k) t << " colspan=\"" << (j - k + 1) << "\"";
      t << " bgcolor=\"" << (none ? "white" : colors.fill) << "\">"
        << (none ? font(html_escape(text), kMutedColor) : html_escape(text)) << "</td>";
      k = j + 1;
    }
    t << "</tr>";
  }
  t << "</table>";

  const std::string subtitle = "layer " + num(layer) +
                               (prefix.empty() ? "" : " (" + prefix + "*)") +
                               ": which slice of each tensor every rank holds (rows " + kEnDash +
                               " dimension 0, cols " + kEnDash + " dimension 1, ranges inclusive)";
  std::ostringstream out;
  write_header(out, plan, subtitle);
  write_key(out, plan, false);
  out << "  slices [shape=plain, style=\"\", fontsize=10, label=<" << t.str() << ">];\n";
  out << "  mesh -> slices [style=invis];\n";
  out << "}\n";
  return out.str();
}

}  // namespace

std::optional<PlanView> parse_plan_view(const std::string& text) {
  if (text == "modules") return PlanView::kModules;
  if (text == "ranks") return PlanView::kRanks;
  return std::nullopt;
}

ModeColors mode_colors(ParallelMode mode) {
  switch (mode) {
    case ParallelMode::kReplicate:
      return {"#e6e6e6", "#6e6e6e"};
    case ParallelMode::kTensor:
      return {"#cfe2f3", "#1f5fa8"};
    case ParallelMode::kData:
      return {"#d4edcf", "#2e7d32"};
    case ParallelMode::kExpert:
      return {"#e4dcf3", "#6a3fb0"};
  }
  return {"white", "black"};
}

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string slice_text(const std::vector<int64_t>& full, const ShardSlice& slice) {
  for (int64_t s : slice.shape) {
    if (s == 0) return "\u2014";
  }
  std::string out;
  for (size_t d = 0; d < full.size(); ++d) {
    if (slice.offset[d] == 0 && slice.shape[d] == full[d]) continue;
    std::string dim = full.size() == 1 ? ""
                      : d == 0         ? "rows "
                      : d == 1         ? "cols "
                                       : "dim " + num(d) + " ";
    if (!out.empty()) out += ", ";
    out += dim + num(slice.offset[d]) + kEnDash + num(slice.offset[d] + slice.shape[d] - 1);
  }
  return out.empty() ? "whole" : out;
}

std::string plan_to_dot(const Plan& plan, const DotOptions& options) {
  if (options.view == PlanView::kRanks) return ranks_dot(plan, options);
  if (options.layer) throw RenderError("--layer applies to the ranks view only (--view ranks)");
  return modules_dot(plan);
}

}  // namespace shardplan
