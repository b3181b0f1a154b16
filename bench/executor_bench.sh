#!/usr/bin/env bash
# Executor benchmark: runs each spec's workload and prints decode ms per step and output tokens/s
# next to the bandwidth bound (weight bytes per rank / measured device memory bandwidth), as a
# table, JSON and an SVG bar chart. The bound is the time to read every weight of a rank once per
# decode step; a ratio near 1 means decoding runs at memory speed.
#
#   bench/executor_bench.sh [--device cpu|cuda] [--executor PATH] [--out DIR] SPEC...
# Example (CPU): bench/executor_bench.sh examples/tiny-llama-tp2.yaml examples/tiny-llama-dp2-tp2.yaml
set -euo pipefail
device=cpu
executor=build/executor/executor
out=build/bench-executor
specs=()
while (($#)); do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --executor) executor=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) specs+=("$1"); shift ;;
  esac
done
((${#specs[@]})) || { echo "executor_bench: no spec given" >&2; exit 2; }
mkdir -p "$out"

"$executor" bandwidth --device "$device" --format json > "$out/bandwidth.json"
for spec in "${specs[@]}"; do
  name=$(basename "$spec" .yaml)
  echo "executor_bench: running $spec on $device" >&2
  "$executor" run --spec "$spec" --device "$device" --format json > "$out/$name.json"
done

python3 - "$out" "${specs[@]}" <<'PY'
import json, os, sys
out, specs = sys.argv[1], sys.argv[2:]
bw = json.load(open(os.path.join(out, "bandwidth.json")))
rows = []
for spec in specs:
    name = os.path.splitext(os.path.basename(spec))[0]
    r = json.load(open(os.path.join(out, name + ".json")))
    wbytes = max(r["weight_bytes_read"])
    bound_ms = wbytes / (bw["GBps"] * 1e9) * 1e3
    tpot = r["tpot_ms"]["median"]
    rows.append({"spec": name, "world_size": r["world_size"], "dtype": r["dtype"],
                 "weight_bytes_per_rank": wbytes, "bandwidth_GBps": bw["GBps"],
                 "bound_ms_per_step": bound_ms, "decode_ms_per_step": tpot,
                 "x_bound": tpot / bound_ms if bound_ms > 0 else None,
                 "output_tokens_per_s": r["output_tokens_per_s"],
                 "ttft_ms_median": r["ttft_ms"]["median"], "requests": r["requests"]})
json.dump({"device": bw["device"], "bandwidth_GBps": bw["GBps"], "runs": rows},
          open(os.path.join(out, "executor_bench.json"), "w"), indent=1)
print(f"device {bw['device']}: measured copy bandwidth {bw['GBps']:.1f} GB/s")
print(f"{'spec':40} {'ranks':>5} {'weights/rank':>14} {'bound ms':>9} {'decode ms':>10} {'x bound':>8} {'tok/s':>9}")
for r in rows:
    print(f"{r['spec']:40} {r['world_size']:>5} {r['weight_bytes_per_rank']/2**20:>11.1f} MiB "
          f"{r['bound_ms_per_step']:>9.3f} {r['decode_ms_per_step']:>10.3f} {r['x_bound']:>8.2f} "
          f"{r['output_tokens_per_s']:>9.1f}")
# SVG: decode ms per step (bar) against the bound (tick), one row per spec.
w, row_h, left = 760, 34, 260
h = 60 + row_h * len(rows)
mx = max(max(r["decode_ms_per_step"], r["bound_ms_per_step"]) for r in rows) or 1
scale = (w - left - 40) / mx
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
       f'<text x="10" y="20" font-size="14" font-weight="bold">decode ms per step (bar) vs bandwidth bound (red tick), {bw["device"]}, {bw["GBps"]:.0f} GB/s</text>']
for i, r in enumerate(rows):
    y = 40 + i * row_h
    bw_px = r["decode_ms_per_step"] * scale
    bx = left + r["bound_ms_per_step"] * scale
    svg.append(f'<text x="10" y="{y + 16}">{r["spec"]}</text>')
    svg.append(f'<rect x="{left}" y="{y + 4}" width="{bw_px:.1f}" height="18" fill="#5b8def"/>')
    svg.append(f'<line x1="{bx:.1f}" y1="{y}" x2="{bx:.1f}" y2="{y + 26}" stroke="#d62728" stroke-width="3"/>')
    svg.append(f'<text x="{left + bw_px + 6:.1f}" y="{y + 17}">{r["decode_ms_per_step"]:.2f} ms ({r["x_bound"]:.1f}x bound)</text>')
svg.append("</svg>")
open(os.path.join(out, "executor_bench.svg"), "w").write("\n".join(svg) + "\n")
print(f"wrote {out}/executor_bench.json and {out}/executor_bench.svg")
PY
