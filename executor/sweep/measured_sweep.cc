// Measured sweeps (see measured_sweep.h).
#include "executor/sweep/measured_sweep.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "planner/io/output_file.h"

extern char** environ;

namespace shardplan {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs `argv` with stdout and stderr into files; returns its exit status (128 + signal).
int spawn(const std::vector<std::string>& argv, const fs::path& out, const fs::path& err) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int failed = posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (failed != 0) return 127;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string last_lines(const std::string& text, int n) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  std::string out;
  for (size_t i = lines.size() > static_cast<size_t>(n) ? lines.size() - n : 0; i < lines.size(); ++i) {
    out += (out.empty() ? "" : " | ") + lines[i];
  }
  return out;
}

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error(message); }

// The spec of rank `rank` as the run takes it: model.config made absolute (it was relative to the
// sweep's folder), model.checkpoint set where the spec has none.
std::string runnable_spec(const fs::path& spec, const std::string& checkpoint, std::string* config, std::string* dtype) {
  YAML::Node root = YAML::LoadFile(spec.string());
  YAML::Node model = root["model"];
  if (!model || !model["config"]) fail(spec.string() + ": no model.config");
  fs::path cfg = model["config"].as<std::string>();
  if (cfg.is_relative()) cfg = fs::absolute(spec.parent_path() / cfg).lexically_normal();
  model["config"] = cfg.string();
  *config = cfg.string();
  *dtype = model["dtype"] ? model["dtype"].as<std::string>() : "float32";
  if (!model["checkpoint"]) {
    if (checkpoint.empty()) return "";  // the caller makes one and asks again
    model["checkpoint"] = fs::absolute(checkpoint).string();
  } else {
    fs::path ckpt = model["checkpoint"].as<std::string>();
    if (ckpt.is_relative()) model["checkpoint"] = fs::absolute(spec.parent_path() / ckpt).lexically_normal().string();
  }
  YAML::Emitter out;
  out << root;
  return std::string("# Written by executor sweep from ") + spec.filename().string() + "\n" + out.c_str() + "\n";
}

std::vector<double> ranks_of(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> rank(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    for (size_t k = i; k <= j; ++k) rank[order[k]] = (static_cast<double>(i) + static_cast<double>(j)) / 2 + 1;
    i = j + 1;
  }
  return rank;
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

// The plan as tables and charts name it: "<sweep folder>: <plan>" when several sweeps were run.
std::string plan_label(const MeasuredPlan& p) { return p.sweep.empty() ? p.plan : p.sweep + ": " + p.plan; }

// A chart point's label: the plan's rank, after its sweep's folder name when several were run.
std::string point_label(const MeasuredPlan& p) {
  return p.sweep.empty() ? std::to_string(p.rank) : p.sweep + "/" + std::to_string(p.rank);
}

// Predicted (x) against measured (y) tokens/s, one point per plan, log axes, the diagonal drawn.
std::string scatter_svg(const std::vector<MeasuredPlan>& plans, const std::string& title) {
  double lo = 1e300, hi = 0;
  for (const MeasuredPlan& p : plans) {
    if (!p.ran) continue;
    lo = std::min({lo, p.predicted_tokens_per_s, p.tokens_per_s});
    hi = std::max({hi, p.predicted_tokens_per_s, p.tokens_per_s});
  }
  if (hi <= 0) lo = 1, hi = 10;
  lo = std::pow(10, std::floor(std::log10(std::max(lo, 1e-9))));
  hi = std::pow(10, std::ceil(std::log10(std::max(hi, lo * 10))));
  const int w = 560, h = 520, left = 80, top = 50, size = 400;
  const auto px = [&](double v) { return left + size * (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo)); };
  const auto py = [&](double v) { return top + size - size * (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo)); };
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w << "\" height=\"" << h
    << "\" font-family=\"DejaVu Sans, sans-serif\" font-size=\"12\">\n<rect width=\"" << w << "\" height=\"" << h
    << "\" fill=\"white\"/>\n<text x=\"" << left << "\" y=\"24\" font-size=\"14\" font-weight=\"bold\">"
    << escape(title) << "</text>\n";
  s << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << size << "\" height=\"" << size
    << "\" fill=\"none\" stroke=\"#888\"/>\n";
  s << "<line x1=\"" << left << "\" y1=\"" << top + size << "\" x2=\"" << left + size << "\" y2=\"" << top
    << "\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/>\n";
  for (double t = lo; t <= hi * 1.0001; t *= 10) {
    s << "<text x=\"" << px(t) << "\" y=\"" << top + size + 16 << "\" text-anchor=\"middle\">" << t << "</text>\n";
    s << "<text x=\"" << left - 6 << "\" y=\"" << py(t) + 4 << "\" text-anchor=\"end\">" << t << "</text>\n";
  }
  s << "<text x=\"" << left + size / 2 << "\" y=\"" << top + size + 36
    << "\" text-anchor=\"middle\">predicted tokens/s</text>\n<text x=\"18\" y=\"" << top + size / 2
    << "\" transform=\"rotate(-90 18 " << top + size / 2 << ")\" text-anchor=\"middle\">measured tokens/s</text>\n";
  for (const MeasuredPlan& p : plans) {
    if (!p.ran) continue;
    s << "<circle cx=\"" << px(p.predicted_tokens_per_s) << "\" cy=\"" << py(p.tokens_per_s)
      << "\" r=\"5\" fill=\"#2b6cb0\"><title>" << p.rank << ": " << escape(plan_label(p)) << "</title></circle>\n";
    s << "<text x=\"" << px(p.predicted_tokens_per_s) + 7 << "\" y=\"" << py(p.tokens_per_s) - 5
      << "\" font-size=\"10\">" << escape(point_label(p)) << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

// Tokens/s per GPU against tokens/s per request: predicted (hollow) and measured (filled) per
// plan, joined by a line; the measured Pareto frontier drawn.
std::string pareto_svg(const std::vector<MeasuredPlan>& plans, const std::string& title) {
  double xmax = 0, ymax = 0;
  for (const MeasuredPlan& p : plans) {
    xmax = std::max({xmax, 1000 / std::max(p.predicted_decode_ms, 1e-9), p.ran ? 1000 / std::max(p.decode_ms, 1e-9) : 0});
    ymax = std::max({ymax, p.predicted_tokens_per_s / p.world, p.ran ? p.tokens_per_s / p.world : 0});
  }
  xmax = xmax > 0 ? xmax * 1.1 : 1;
  ymax = ymax > 0 ? ymax * 1.1 : 1;
  const int w = 640, h = 480, left = 80, top = 50, pw = 520, ph = 360;
  const auto px = [&](double v) { return left + pw * v / xmax; };
  const auto py = [&](double v) { return top + ph - ph * v / ymax; };
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w << "\" height=\"" << h
    << "\" font-family=\"DejaVu Sans, sans-serif\" font-size=\"12\">\n<rect width=\"" << w << "\" height=\"" << h
    << "\" fill=\"white\"/>\n<text x=\"" << left << "\" y=\"24\" font-size=\"14\" font-weight=\"bold\">"
    << escape(title) << "</text>\n<text x=\"" << left << "\" y=\"40\" fill=\"#555\">hollow: predicted; filled: "
    << "measured; line: the measured Pareto frontier</text>\n";
  s << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << pw << "\" height=\"" << ph
    << "\" fill=\"none\" stroke=\"#888\"/>\n";
  s << "<text x=\"" << left + pw / 2 << "\" y=\"" << top + ph + 34
    << "\" text-anchor=\"middle\">tokens/s per request</text>\n<text x=\"18\" y=\"" << top + ph / 2
    << "\" transform=\"rotate(-90 18 " << top + ph / 2 << ")\" text-anchor=\"middle\">tokens/s per GPU</text>\n";
  for (int i = 0; i <= 4; ++i) {
    s << "<text x=\"" << px(xmax * i / 4) << "\" y=\"" << top + ph + 16 << "\" text-anchor=\"middle\">"
      << fixed(xmax * i / 4, 0) << "</text>\n<text x=\"" << left - 6 << "\" y=\"" << py(ymax * i / 4) + 4
      << "\" text-anchor=\"end\">" << fixed(ymax * i / 4, 0) << "</text>\n";
  }
  std::vector<std::pair<double, double>> measured;
  for (const MeasuredPlan& p : plans) {
    const double x0 = 1000 / std::max(p.predicted_decode_ms, 1e-9), y0 = p.predicted_tokens_per_s / p.world;
    s << "<circle cx=\"" << px(x0) << "\" cy=\"" << py(y0) << "\" r=\"5\" fill=\"none\" stroke=\"#dd6b20\"><title>"
      << p.rank << " predicted: " << escape(plan_label(p)) << "</title></circle>\n";
    if (!p.ran) continue;
    const double x1 = 1000 / std::max(p.decode_ms, 1e-9), y1 = p.tokens_per_s / p.world;
    measured.emplace_back(x1, y1);
    s << "<line x1=\"" << px(x0) << "\" y1=\"" << py(y0) << "\" x2=\"" << px(x1) << "\" y2=\"" << py(y1)
      << "\" stroke=\"#ccc\"/>\n<circle cx=\"" << px(x1) << "\" cy=\"" << py(y1)
      << "\" r=\"5\" fill=\"#2b6cb0\"><title>" << p.rank << " measured: " << escape(plan_label(p)) << "</title></circle>\n"
      << "<text x=\"" << px(x1) + 7 << "\" y=\"" << py(y1) - 5 << "\" font-size=\"10\">" << escape(point_label(p)) << "</text>\n";
  }
  // The frontier: points no other beats on both axes, by tokens/s per request.
  std::sort(measured.begin(), measured.end(), [](auto a, auto b) { return a.first > b.first; });
  std::string path;
  double best_y = -1;
  for (const auto& [x, y] : measured) {
    if (y <= best_y) continue;
    best_y = y;
    path += (path.empty() ? "M" : " L") + fixed(px(x), 1) + " " + fixed(py(y), 1);
  }
  if (!path.empty()) s << "<path d=\"" << path << "\" fill=\"none\" stroke=\"#2b6cb0\" stroke-width=\"1.5\"/>\n";
  s << "</svg>\n";
  return s.str();
}

std::string table_text(const std::vector<MeasuredPlan>& plans, const SweepAccuracy& a) {
  std::ostringstream s;
  char line[512];
  std::snprintf(line, sizeof line, "%-4s %-10s %-10s %-10s %-10s %-10s %-10s %-10s %-10s %s\n", "rank", "ttft pred",
                "ttft meas", "dec pred", "dec meas", "tok/s pred", "tok/s meas", "mem pred", "mem meas", "plan");
  s << line;
  for (const MeasuredPlan& p : plans) {
    if (!p.ran) {
      std::snprintf(line, sizeof line, "%-4lld failed: %s (%s)\n", static_cast<long long>(p.rank), p.error.c_str(),
                    plan_label(p).c_str());
    } else {
      std::snprintf(line, sizeof line, "%-4lld %-10.3f %-10.3f %-10.4f %-10.4f %-10.1f %-10.1f %-10.1f %-10.1f %s\n",
                    static_cast<long long>(p.rank), p.predicted_ttft_ms, p.ttft_ms, p.predicted_decode_ms, p.decode_ms,
                    p.predicted_tokens_per_s, p.tokens_per_s, p.predicted_memory_bytes / 1048576.0,
                    p.peak_memory_bytes / 1048576.0, plan_label(p).c_str());
    }
    s << line;
  }
  s << "(ms; memory in MiB, predicted: the largest rank; measured: its peak)\n";
  s << "points: " << a.points << "; Spearman of tokens/s: " << (a.spearman ? fixed(*a.spearman, 3) : "n/a (< 2 points)")
    << "; top-1 regret: "
    << (a.regret_sweeps > 0 ? fixed(100 * a.top1_regret, 1) + "%" : std::string("n/a (no sweep with 2 plans that ran)"))
    << "\n";
  s << "decode ms error: median " << fixed(100 * a.decode_error_median, 1) << "%, p90 "
    << fixed(100 * a.decode_error_p90, 1) << "%; time to first token error: median "
    << fixed(100 * a.ttft_error_median, 1) << "%, p90 " << fixed(100 * a.ttft_error_p90, 1)
    << "%; memory error: median " << fixed(100 * a.memory_error_median, 1) << "%, max "
    << fixed(100 * a.memory_error_max, 1) << "%\n";
  return s.str();
}

std::string table_csv(const std::vector<MeasuredPlan>& plans) {
  std::ostringstream s;
  s << "rank,plan,ran,predicted_ttft_ms,ttft_ms,predicted_decode_ms,decode_ms,predicted_tokens_per_s,tokens_per_s,"
       "predicted_memory_bytes,peak_memory_bytes\n";
  for (const MeasuredPlan& p : plans) {
    std::string plan = plan_label(p);
    std::replace(plan.begin(), plan.end(), '"', '\'');
    s << p.rank << ",\"" << plan << "\"," << (p.ran ? 1 : 0) << "," << p.predicted_ttft_ms << "," << p.ttft_ms << ","
      << p.predicted_decode_ms << "," << p.decode_ms << "," << p.predicted_tokens_per_s << "," << p.tokens_per_s
      << "," << p.predicted_memory_bytes << "," << p.peak_memory_bytes << "\n";
  }
  return s.str();
}

nlohmann::json to_json(const std::vector<MeasuredPlan>& plans, const SweepAccuracy& a, const std::string& device) {
  nlohmann::json j;
  j["device"] = device;
  for (const MeasuredPlan& p : plans) {
    nlohmann::json e = {{"rank", p.rank},
                        {"sweep", p.sweep},
                        {"plan", p.plan},
                        {"world", p.world},
                        {"predicted",
                         {{"ttft_ms", p.predicted_ttft_ms},
                          {"decode_ms", p.predicted_decode_ms},
                          {"tokens_per_s", p.predicted_tokens_per_s},
                          {"memory_bytes", p.predicted_memory_bytes}}},
                        {"ran", p.ran}};
    if (p.ran) {
      e["measured"] = {{"ttft_ms", p.ttft_ms},
                       {"decode_ms", p.decode_ms},
                       {"tokens_per_s", p.tokens_per_s},
                       {"peak_memory_bytes", p.peak_memory_bytes}};
    } else {
      e["error"] = p.error;
    }
    j["plans"].push_back(e);
  }
  j["accuracy"] = {{"points", a.points},
                   {"spearman_tokens_per_s", a.spearman ? nlohmann::json(*a.spearman) : nlohmann::json()},
                   {"top1_regret", a.regret_sweeps > 0 ? nlohmann::json(a.top1_regret) : nlohmann::json()},
                   {"regret_sweeps", a.regret_sweeps},
                   {"decode_ms_error", {{"median", a.decode_error_median}, {"p90", a.decode_error_p90}}},
                   {"ttft_error", {{"median", a.ttft_error_median}, {"p90", a.ttft_error_p90}}},
                   {"memory_error", {{"median", a.memory_error_median}, {"max", a.memory_error_max}}}};
  return j;
}

}  // namespace

std::optional<double> spearman(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.size() < 2) return std::nullopt;
  const std::vector<double> ra = ranks_of(a), rb = ranks_of(b);
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(ra.begin(), ra.end(), 0.0) / n, mb = std::accumulate(rb.begin(), rb.end(), 0.0) / n;
  double cov = 0, va = 0, vb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    cov += (ra[i] - ma) * (rb[i] - mb);
    va += (ra[i] - ma) * (ra[i] - ma);
    vb += (rb[i] - mb) * (rb[i] - mb);
  }
  if (va == 0 || vb == 0) return std::nullopt;
  return cov / std::sqrt(va * vb);
}

double quantile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double at = q * static_cast<double>(values.size() - 1);
  const size_t i = static_cast<size_t>(std::floor(at));
  if (i + 1 >= values.size()) return values.back();
  return values[i] + (at - static_cast<double>(i)) * (values[i + 1] - values[i]);
}

SweepAccuracy sweep_accuracy(const std::vector<MeasuredPlan>& plans) {
  SweepAccuracy a;
  std::vector<double> predicted, measured, decode, ttft, memory;
  // Per sweep: the plan predicted best and the best measured tokens/s.
  std::map<std::string, std::pair<const MeasuredPlan*, double>> best_of;
  std::map<std::string, int64_t> ran_in;
  for (const MeasuredPlan& p : plans) {
    if (!p.ran) continue;
    ++a.points;
    predicted.push_back(p.predicted_tokens_per_s);
    measured.push_back(p.tokens_per_s);
    auto& [predicted_best, best] = best_of[p.sweep];
    if (!predicted_best || p.predicted_tokens_per_s > predicted_best->predicted_tokens_per_s) predicted_best = &p;
    best = std::max(best, p.tokens_per_s);
    ++ran_in[p.sweep];
    if (p.decode_ms > 0) decode.push_back(std::abs(p.predicted_decode_ms - p.decode_ms) / p.decode_ms);
    if (p.ttft_ms > 0) ttft.push_back(std::abs(p.predicted_ttft_ms - p.ttft_ms) / p.ttft_ms);
    if (p.peak_memory_bytes > 0) {
      memory.push_back(std::abs(static_cast<double>(p.predicted_memory_bytes - p.peak_memory_bytes)) /
                       static_cast<double>(p.peak_memory_bytes));
    }
  }
  a.spearman = spearman(predicted, measured);
  for (const auto& [sweep, pb] : best_of) {
    const auto& [predicted_best, best] = pb;
    if (ran_in[sweep] < 2 || best <= 0) continue;
    ++a.regret_sweeps;
    a.top1_regret = std::max(a.top1_regret, (best - predicted_best->tokens_per_s) / best);
  }
  a.decode_error_median = quantile(decode, 0.5);
  a.decode_error_p90 = quantile(decode, 0.9);
  a.ttft_error_median = quantile(ttft, 0.5);
  a.ttft_error_p90 = quantile(ttft, 0.9);
  a.memory_error_median = quantile(memory, 0.5);
  a.memory_error_max = memory.empty() ? 0 : *std::max_element(memory.begin(), memory.end());
  return a;
}

namespace {

// Runs the specs of one planner sweep folder; their results go to `out`. `checkpoints` maps a
// config and dtype to the random weights made for them (shared by the folders of one model).
// Returns false (after printing why) when the folder cannot be run at all.
bool measure_folder(const MeasuredSweepOptions& o, const fs::path& dir, const fs::path& out, const fs::path& weights,
                    std::map<std::string, std::string>& checkpoints, std::vector<MeasuredPlan>& plans,
                    nlohmann::json& sweep) {
  const fs::path index = dir / "sweep.json";
  if (!fs::is_regular_file(index)) {
    std::cerr << "executor: error: " << dir.string() << " has no sweep.json (write one with `planner sweep ... -o "
              << dir.string() << "`)\n";
    return false;
  }
  try {
    sweep = nlohmann::json::parse(slurp(index));
  } catch (const nlohmann::json::exception& e) {
    std::cerr << "executor: error: " << index.string() << ": not planner sweep's JSON: " << e.what() << "\n";
    return false;
  }
  if (!sweep.contains("ranked") || !sweep["ranked"].is_array()) {
    std::cerr << "executor: error: " << index.string() << ": no 'ranked' list\n";
    return false;
  }
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec || !fs::is_directory(out)) {
    std::cerr << "executor: error: cannot make the results folder " << out.string() << ": " << ec.message() << "\n";
    return false;
  }
  const std::string label = o.dirs.size() > 1 ? dir.filename().string() : std::string();
  const int64_t world = sweep.value("world", 1);
  const int64_t total = o.top > 0 ? std::min<int64_t>(o.top, static_cast<int64_t>(sweep["ranked"].size()))
                                  : static_cast<int64_t>(sweep["ranked"].size());
  for (int64_t i = 0; i < total; ++i) {
    const nlohmann::json& e = sweep["ranked"][i];
    MeasuredPlan p;
    p.rank = e.value("rank", i + 1);
    p.sweep = label;
    p.plan = e.value("plan", std::string());
    p.world = world;
    p.predicted_ttft_ms = e.value("ttft_ms", 0.0);
    p.predicted_decode_ms = e.value("decode_ms", 0.0);
    p.predicted_tokens_per_s = e.value("tokens_per_s", 0.0);
    p.predicted_memory_bytes = e.value("memory_bytes", int64_t{0});
    char name[32];
    std::snprintf(name, sizeof name, "rank-%02lld", static_cast<long long>(p.rank));
    const fs::path spec = dir / (std::string(name) + ".yaml");
    std::string config, dtype;
    std::string text = runnable_spec(spec, o.checkpoint, &config, &dtype);
    std::string* made = nullptr;  // random weights this spec runs on, made below if it runs
    if (text.empty()) {
      // No checkpoint named anywhere: random weights of the model, made once per config and dtype.
      made = &checkpoints[config + "\n" + dtype];
      if (made->empty()) {
        *made = (o.dirs.size() > 1 ? weights / (fs::path(config).stem().string() + "-" + dtype) : weights).string();
      }
      text = runnable_spec(spec, *made, &config, &dtype);
    }
    const fs::path run_spec = out / (std::string(name) + ".yaml");
    const fs::path json = out / (std::string(name) + ".json"), err = out / (std::string(name) + ".err");
    // --resume: a report of this very spec (same text) from an earlier sweep is taken as measured.
    const bool reuse = o.resume && fs::is_regular_file(run_spec) && slurp(run_spec) == text &&
                       fs::is_regular_file(json) && nlohmann::json::accept(slurp(json));
    int rc = 0;
    if (!reuse) {
      if (made && !fs::exists(fs::path(*made) / "model.safetensors") &&
          !fs::exists(fs::path(*made) / "model.safetensors.index.json")) {
        std::cerr << "executor sweep: random weights of " << fs::path(config).filename().string() << " (" << dtype
                  << ") into " << *made << "\n";
        const int made_rc = spawn({o.executor, "make-checkpoint", "--config", config, "--out", *made, "--seed", "1",
                                   "--dtype", dtype},
                                  out / "checkpoint.log", out / "checkpoint.err");
        if (made_rc != 0) {
          std::cerr << "executor: error: make-checkpoint failed: " << last_lines(slurp(out / "checkpoint.err"), 3)
                    << "\n";
          return false;
        }
      }
      if (const std::string failure = write_output_file(run_spec.string(), text); !failure.empty()) {
        std::cerr << "executor: error: cannot write '" << run_spec.string() << "': " << failure << "\n";
        return false;
      }
      rc = spawn({o.executor, "run", "--spec", run_spec.string(), "--device", o.device, "--format", "json"}, json, err);
    }
    if (rc == 0) {
      try {
        const nlohmann::json r = nlohmann::json::parse(slurp(json));
        p.ttft_ms = r.at("ttft_ms").at("median").get<double>();
        p.decode_ms = r.at("tpot_ms").at("median").get<double>();
        p.tokens_per_s = r.at("output_tokens_per_s").get<double>();
        for (const auto& b : r.value("peak_memory_bytes", nlohmann::json::array())) {
          p.peak_memory_bytes = std::max(p.peak_memory_bytes, b.get<int64_t>());
        }
        p.ran = true;
      } catch (const nlohmann::json::exception& ex) {
        p.error = std::string("unreadable report: ") + ex.what();
      }
    } else {
      p.error = "exit " + std::to_string(rc) + ": " + last_lines(slurp(err), 2);
    }
    std::cerr << "executor sweep: " << (label.empty() ? "" : label + " ") << i + 1 << "/" << total << " " << name
              << (reuse ? " (earlier run)" : "") << ": "
              << (p.ran ? fixed(p.decode_ms, 3) + " ms/step (predicted " + fixed(p.predicted_decode_ms, 3) + "), " +
                              fixed(p.tokens_per_s, 1) + " tokens/s (predicted " + fixed(p.predicted_tokens_per_s, 1) +
                              ")"
                        : "failed: " + p.error)
              << "\n";
    plans.push_back(p);
  }
  return true;
}

// measured.{txt,csv,json} and the two charts of `plans` into `out`; false after printing why.
bool write_results(const std::vector<MeasuredPlan>& plans, const fs::path& out, const std::string& title,
                   const std::string& device, bool print) {
  const SweepAccuracy accuracy = sweep_accuracy(plans);
  const std::string text = table_text(plans, accuracy);
  if (print) std::cout << text;
  for (const auto& [file, bytes] :
       std::vector<std::pair<std::string, std::string>>{{"measured.txt", text},
                                                        {"measured.csv", table_csv(plans)},
                                                        {"measured.json", to_json(plans, accuracy, device).dump(1) + "\n"},
                                                        {"predicted-vs-measured.svg", scatter_svg(plans, title)},
                                                        {"pareto-measured.svg", pareto_svg(plans, title)}}) {
    if (const std::string failure = write_output_file((out / file).string(), bytes); !failure.empty()) {
      std::cerr << "executor: error: cannot write '" << (out / file).string() << "': " << failure << "\n";
      return false;
    }
  }
  std::cerr << "executor sweep: wrote measured.txt, measured.csv, measured.json, predicted-vs-measured.svg and "
               "pareto-measured.svg to "
            << out.string() << "\n";
  return true;
}

}  // namespace

int measured_sweep_command(const MeasuredSweepOptions& o) {
  try {
    if (o.dirs.empty()) {
      std::cerr << "executor: error: sweep: no folder given\n";
      return 2;
    }
    if (o.dirs.size() > 1 && o.output.empty()) {
      std::cerr << "executor: error: sweep: " << o.dirs.size()
                << " folders need -o OUT (each folder's results go to OUT/<folder>, all points to OUT)\n";
      return 2;
    }
    const bool several = o.dirs.size() > 1;
    const fs::path all = several ? fs::path(o.output) : fs::path();
    std::map<std::string, std::string> checkpoints;
    std::vector<MeasuredPlan> everything;
    for (const std::string& d : o.dirs) {
      const fs::path dir(d);
      const fs::path out = several ? all / dir.filename() : o.output.empty() ? dir / "measured" : fs::path(o.output);
      const fs::path weights = several ? all / "checkpoints" : out / "checkpoint";
      std::vector<MeasuredPlan> plans;
      nlohmann::json sweep;
      if (!measure_folder(o, dir, out, weights, checkpoints, plans, sweep)) return 2;
      const std::string title = fs::path(sweep.value("config", std::string("model"))).stem().string() + " on " +
                                std::to_string(sweep.value("world", 1)) + " x " + o.device +
                                ": predicted against measured";
      if (!write_results(plans, out, title, o.device, !several)) return 2;
      everything.insert(everything.end(), plans.begin(), plans.end());
    }
    if (several) {
      std::error_code ec;
      fs::create_directories(all, ec);
      if (!write_results(everything, all, std::to_string(o.dirs.size()) + " sweeps on " + o.device +
                                              ": predicted against measured",
                         o.device, true)) {
        return 2;
      }
    }
    if (sweep_accuracy(everything).points == 0) {
      std::cerr << "executor: error: no plan ran\n";
      return 2;
    }
    return 0;
  } catch (const YAML::Exception& e) {
    std::cerr << "executor: error: sweep: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "executor: error: sweep: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace shardplan
