#!/usr/bin/env bash
# The encoders on the GPU (docs/encoder-performance.md), in one invocation on the same device(s)
# and the same random llava-1.5-7b weights (bf16):
#   - time to the first token of 1 request with 1 image (prompt 16, 8 new tokens): `executor run`
#     with its encoder CUDA graphs (the default), with --no-cuda-graphs, and a baseline executor
#     (--baseline EXE: another build, e.g. of the commit the performance issue measured);
#   - the vision tower's data-parallel scaling at 64 images (64 requests x 1 image, the language
#     model replicated): encoder images/s on 1 and on G GPUs (--profile's time by kind, so the
#     towers run eagerly: --profile turns the graphs off), scaling = images/s on G / (G x images/s
#     on 1). Skipped, and said so, with one GPU.
# Each run is one `executor run` (its time to first token: one request, one sample); --repeat N
# runs each N times and reports the median.
#
#   bench/encoder.sh [--executor EXE] [--baseline EXE] [--baseline-label TEXT] [--gpus G]
#                    [--repeat N] [--python PY] [--out DIR] [--doc FILE.md]
# Defaults: build/executor/executor, G = the GPUs present, OUT build/bench-encoder, the page
# docs/encoder-performance.md and its SVG beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
executor=build/executor/executor baseline="" baseline_label="baseline" gpus="" out=build/bench-encoder repeat=1
doc=docs/encoder-performance.md
python=$([[ -x .venv/bin/python3 ]] && echo .venv/bin/python3 || echo python3)
while (($#)); do
  case "$1" in
    --executor) executor=$2; shift 2 ;;
    --baseline) baseline=$2; shift 2 ;;
    --baseline-label) baseline_label=$2; shift 2 ;;
    --gpus) gpus=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --doc) doc=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "encoder.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ -x $executor ]] || { echo "encoder.sh: no executor at $executor (build first)" >&2; exit 2; }
[[ -z $baseline || -x $baseline ]] || { echo "encoder.sh: no baseline executor at $baseline" >&2; exit 2; }
[[ $repeat =~ ^[1-9][0-9]*$ ]] || { echo "encoder.sh: --repeat must be a positive integer, not '$repeat'" >&2; exit 2; }
command -v nvidia-smi >/dev/null || { echo "encoder.sh: needs a CUDA GPU (nvidia-smi not found)" >&2; exit 2; }
present=$(nvidia-smi -L | grep -c '^GPU')
gpus=${gpus:-$present}
((gpus >= 1 && gpus <= present)) || { echo "encoder.sh: --gpus $gpus, $present present" >&2; exit 2; }
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
mkdir -p "$out"
out=$(cd "$out" && pwd)
config=$PWD/models/configs/llava-1.5-7b.json
log() { echo "encoder: $*" >&2; }

ckpt=$out/ckpt-llava-1.5-7b-bfloat16
if [[ ! -f $ckpt/model.safetensors.index.json && ! -f $ckpt/model.safetensors ]]; then
  log "random checkpoint of llava-1.5-7b in bfloat16"
  "$executor" make-checkpoint --config "$config" --out "$ckpt" --seed 1 --dtype bfloat16 >/dev/null
fi

# spec NAME GPUS BATCH ENCODER_MODE: llava on {tp: GPUS}, the vision tower in ENCODER_MODE over
# tp, the rest replicated (requests split over tp where the tower is data-parallel).
spec() {
  local name=$1 n=$2 batch=$3 mode=$4 rules=""
  [[ $mode == replicate ]] || rules="modules:
  - {kind: encoder, mode: $mode, axes: [tp]}"
  cat >"$out/$name.yaml" <<YAML
version: 1
name: llava-1.5-7b, vision tower $mode over $n GPU(s), batch $batch x 1 image
model:
  config: $config
  checkpoint: $ckpt
  dtype: bfloat16
mesh: {tp: $n}
$rules
workload:
  batch: $batch
  prompt_tokens: 16
  new_tokens: 8
  images_per_request: 1
YAML
}

runs=()
# run NAME EXE [FLAGS...]: `executor run --format json` of NAME.yaml, --repeat times (NAME.json
# the first report with ttft_ms.median the median over the runs).
run() {
  local name=$1 exe=$2 i
  shift 2
  for ((i = 1; i <= repeat; i++)); do
    log "executor run: $name $* ($i of $repeat)"
    if ! "$exe" run --spec "$out/${name%%+*}.yaml" --device cuda --format json "$@" >"$out/$name.$i.json" \
        2>"$out/$name.err"; then
      log "run failed: $name (see $out/$name.err)"; tail -3 "$out/$name.err" >&2
      return
    fi
  done
  "$python" - "$out" "$name" "$repeat" <<'PY'
import json, statistics, sys
out, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
reports = [json.load(open(f"{out}/{name}.{i}.json")) for i in range(1, n + 1)]
first = reports[0]
first["ttft_ms"]["median"] = statistics.median(r["ttft_ms"]["median"] for r in reports)
first["repeats"] = n
json.dump(first, open(f"{out}/{name}.json", "w"))
PY
  runs+=("$name")
}

spec ttft 1 1 replicate
run ttft+graphs "$executor"
run ttft+no-graphs "$executor" --no-cuda-graphs
[[ -z $baseline ]] || run ttft+baseline "$baseline"
if ((gpus >= 2)); then
  spec scale-1 1 64 data
  spec "scale-$gpus" "$gpus" 64 data
  run scale-1+profile "$executor" --profile
  run "scale-$gpus+profile" "$executor" --profile
else
  log "one GPU: the data-parallel scaling needs two or more (skipped)"
fi

"$python" - "$out" "$doc" "$gpus" "$baseline_label" "$repeat" ${runs[@]+"${runs[@]}"} <<'PY'
# The page and its SVG from the runs' JSON reports.
import datetime, json, os, subprocess, sys
out, doc, gpus, baseline_label, repeat, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6:]
rep = {r: json.load(open(os.path.join(out, r + ".json"))) for r in runs}
def gpu_name():
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True).stdout.splitlines()[0].strip()
    except Exception:
        return "unknown GPU"
commit = os.environ.get("SHARDPLAN_COMMIT") or subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                                                              capture_output=True, text=True).stdout.strip()
labels = {"ttft+graphs": "encoder CUDA graphs (default)", "ttft+no-graphs": "--no-cuda-graphs",
          "ttft+baseline": baseline_label}
ttft = [(labels[r], rep[r]["ttft_ms"]["median"], rep[r].get("cuda_graphs", {})) for r in labels if r in rep]
lines = ["# Encoders on the GPU: time to first token with encoder graphs, and data-parallel scaling", "",
         "Produced by `bench/encoder.sh` (one invocation; rerun it to refresh this page).", "",
         f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; device: {gpus} x {gpu_name()}; commit {commit}",
         "- model: llava-1.5-7b (random weights), bfloat16; 1 request, 1 image (576 image tokens), "
         "16 text tokens, 8 new tokens; every run warms up (a prefill and a decode step) before it is timed; "
         + ("one run each (the time to first token of its one request: one sample)" if repeat == 1 else
            f"the median over {repeat} runs each"), "",
         "| run | time to first token ms | encoder graphs | their capture ms |", "|---|---|---|---|"]
for name, ms, graphs in ttft:
    lines.append(f"| {name} | {ms:.2f} | {graphs.get('encoders', '-')} | "
                 f"{graphs['encoder_capture_ms']:.1f} |" if 'encoder_capture_ms' in graphs else
                 f"| {name} | {ms:.2f} | - | - |")
by = {n: ms for n, ms, _ in ttft}
if labels["ttft+graphs"] in by:
    for other in (labels["ttft+no-graphs"], baseline_label):
        if other in by and by[other] > 0:
            lines.append(f"\nWith the encoder graphs: {by[labels['ttft+graphs']] / by[other]:.2f}x the time to first token of {other}.")
lines.append("")
scale = [r for r in rep if r.startswith("scale-")]
if len(scale) == 2:
    def images_per_s(r):
        kinds = rep[r].get("time_by_kind_s", {})
        return 64 / kinds["encoder"] if kinds.get("encoder") else 0
    one = images_per_s("scale-1+profile")
    many_name = [r for r in scale if r != "scale-1+profile"][0]
    many = images_per_s(many_name)
    lines += ["## Vision tower data-parallel scaling (64 requests x 1 image; eager towers: --profile)", "",
              "| GPUs | encoder images/s | scaling |", "|---|---|---|",
              f"| 1 | {one:.0f} | 1 |", f"| {gpus} | {many:.0f} | {many / (gpus * one):.0%} of linear |", ""]
else:
    lines += ["## Vision tower data-parallel scaling", "", "Not measured: one GPU here (it needs two or more).", ""]
svg = os.path.splitext(doc)[0] + ".svg"
lines.insert(7, f"![time to first token]({os.path.basename(svg)})\n")
open(doc, "w").write("\n".join(lines) + "\n")
# A horizontal bar per run.
w, bar, left = 640, 28, 230
top = max([ms for _, ms, _ in ttft] + [1])
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{60 + bar * len(ttft) * 2}" '
         'font-family="sans-serif" font-size="12">', f'<rect width="100%" height="100%" fill="white"/>',
         '<text x="10" y="22" font-size="14" font-weight="bold">llava-1.5-7b, 1 request x 1 image: time to first token (ms)</text>']
for i, (name, ms, _) in enumerate(ttft):
    y = 45 + i * bar * 2
    length = (w - left - 80) * ms / top
    parts += [f'<text x="{left - 8}" y="{y + 18}" text-anchor="end">{name}</text>',
              f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar}" fill="#2b6cb0"/>',
              f'<text x="{left + length + 6:.1f}" y="{y + 18}">{ms:.1f}</text>']
open(svg, "w").write("\n".join(parts + ["</svg>"]) + "\n")
print("\n".join(lines))
PY
