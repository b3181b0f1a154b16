#!/usr/bin/env bash
# Builds and runs the planner benchmarks (bench/planner_bench.cc) and writes, under BUILD/bench/:
#   bench.json  Google Benchmark's JSON (times in ms, and the ratio counters x_yaml_parse /
#               x_model_graph against references measured in the same run)
#   bench.svg   a bar chart of the CPU times (log scale, target marked per bar, ratio beside it)
#
# Usage: scripts/bench.sh [BENCHMARK_FILTER]        e.g. scripts/bench.sh 'plan/'
# Environment: BUILD_DIR (default: build), JOBS (default: 2), BENCH_MIN_TIME (default: 0.5 s).
# An existing build directory is used as it is configured; a new one is configured RelWithDebInfo
# (the project's default) with the executor off, as the planner alone is measured.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build}
jobs=${JOBS:-2}
min_time=${BENCH_MIN_TIME:-0.5}
filter=${1:-.}
out=$build/bench

if [[ ! -f $build/CMakeCache.txt ]]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSHARDPLAN_BUILD_EXECUTOR=OFF -DSHARDPLAN_BUILD_BENCH=ON
elif ! grep -q '^SHARDPLAN_BUILD_BENCH:BOOL=ON' "$build/CMakeCache.txt"; then
  cmake -S "$root" -B "$build" -DSHARDPLAN_BUILD_BENCH=ON
fi
cmake --build "$build" --target planner_bench -j "$jobs"

mkdir -p "$out"
"$build/bench/planner_bench" \
  --benchmark_filter="$filter" \
  --benchmark_min_time="$min_time" \
  --benchmark_out="$out/bench.json" \
  --benchmark_out_format=json \
  --benchmark_counters_tabular=true

python3 - "$out/bench.json" "$out/bench.svg" <<'PY'
# bench.json -> bench.svg: one horizontal bar per benchmark (thread CPU ms, log scale; wall time
# on a shared machine measures the other tenants), its target as a red tick, and the ratio
# against its same-run reference printed beside it.
import json, math, sys
from xml.sax.saxutils import escape

data = json.load(open(sys.argv[1]))
rows = []
for b in data["benchmarks"]:
    if b.get("run_type") == "aggregate" or b.get("error_occurred"):
        continue
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
    ms = b["cpu_time"] * scale
    ratio = None
    for key in ("x_yaml_parse", "x_model_graph"):
        if key in b:
            ratio = (key[2:], b[key])
    rows.append((b["name"], ms, b.get("target_ms"), ratio))

lo = min(0.01, min(r[1] for r in rows))
hi = max(1000.0, max(max(r[1], r[2] or 0) for r in rows))
left, width, bar_h, gap, top = 300, 520, 14, 6, 40
height = top + len(rows) * (bar_h + gap) + 40
def x(ms):
    return left + width * (math.log10(max(ms, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 260}" height="{height}" '
       'font-family="monospace" font-size="11">',
       '<rect width="100%" height="100%" fill="white"/>',
       f'<text x="10" y="20" font-size="13">shardplan planner benchmarks '
       f'({escape(data["context"].get("date", ""))}, {data["context"].get("num_cpus", "?")} CPUs) '
       '- thread CPU ms, log scale; red tick: target</text>']
decade = 10 ** math.floor(math.log10(lo))
while decade <= hi:
    xx = x(decade)
    svg.append(f'<line x1="{xx:.1f}" y1="{top - 8}" x2="{xx:.1f}" y2="{height - 30}" stroke="#ddd"/>')
    svg.append(f'<text x="{xx:.1f}" y="{height - 16}" text-anchor="middle">{decade:g}</text>')
    decade *= 10
for i, (name, ms, target, ratio) in enumerate(rows):
    y = top + i * (bar_h + gap)
    ok = target is None or ms <= target
    color = "#4878d0" if ok else "#d65f5f"
    svg.append(f'<text x="{left - 6}" y="{y + bar_h - 3}" text-anchor="end">{escape(name)}</text>')
    svg.append(f'<rect x="{left}" y="{y}" width="{max(x(ms) - left, 1):.1f}" height="{bar_h}" fill="{color}"/>')
    if target:
        tx = x(target)
        svg.append(f'<line x1="{tx:.1f}" y1="{y - 2}" x2="{tx:.1f}" y2="{y + bar_h + 2}" stroke="red" stroke-width="2"/>')
    label = f"{ms:.3g} ms"
    if ratio:
        label += f"  = {ratio[1]:.3g} x {ratio[0]}"
    svg.append(f'<text x="{left + width + 8}" y="{y + bar_h - 3}">{escape(label)}</text>')
svg.append("</svg>")
open(sys.argv[2], "w").write("\n".join(svg) + "\n")
print(f"wrote {sys.argv[1]} and {sys.argv[2]}")
PY
