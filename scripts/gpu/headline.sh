#!/usr/bin/env bash
# The seeds' headline comparison on one host with N GPUs (N = 8 for the comparison as written;
# any even N >= 2 runs the same steps scaled down), docs/headline-8gpu.md:
#   1. llava-1.5-7b-shaped (random bf16 weights): vision tower data-parallel over N vs
#      tensor-parallel over N, language model TP N, at 1, 4 and 9 images per request: encoder
#      images/s, time to first token, output tokens/s (scripts/gpu/vision-bench.sh; the rules of
#      specs/llava-1.5-7b-vision-dp8-tp8.yaml and specs/llava-1.5-7b-vision-tp8.yaml).
#   2. Llama-3-70B-shaped (random bf16 weights): TP N and dp2 x tp N/2 (the rules of
#      specs/llama-3-70b-tp8.yaml and specs/llama-3-70b-dp2-tp4.yaml): decode ms per step against
#      the bandwidth bound (bench/executor_bench.sh) and `executor run --verify`.
#   scripts/gpu/headline.sh [N] [OUT_DIR]
# Knobs: LAYERS=80 (Llama-3-70B's layers; fewer keeps its widths and cuts the checkpoint: the
# 80-layer bf16 checkpoint is 141 GB and takes minutes to write), BATCH=8 PROMPT=128 NEW=32 (70B
# workload), SKIP_VISION=1, SKIP_70B=1, SKIP_BUILD=1, WORK=/tmp/shardplan-mm-work.
set -uo pipefail
cd "$(dirname "$0")/../.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
n=${1:-8}
out=${2:-${OUT:-/tmp/shardplan-headline}}
work=${WORK:-/tmp/shardplan-mm-work}
mkdir -p "$out" "$work"
out=$(cd "$out" && pwd)
LAYERS=${LAYERS:-80} BATCH=${BATCH:-8} PROMPT=${PROMPT:-128} NEW=${NEW:-32}
status=0
nvidia-smi -L
(( n % 2 == 0 && n <= $(nvidia-smi -L | grep -c '^GPU') )) || { echo "headline: N=$n must be even and <= the GPUs present"; exit 2; }
[[ ${SKIP_BUILD:-0} == 1 ]] || scripts/gpu/build.sh "$work" "$out" || exit 2
exe=$work/build/executor/executor

if [[ ${SKIP_VISION:-0} != 1 ]]; then
  echo "== 1. llava-1.5-7b: vision tower data vs tensor over $n GPUs, language model TP$n"
  SKIP_BUILD=1 WORK=$work scripts/gpu/vision-bench.sh "$n" "$out/vision" || status=1
fi

if [[ ${SKIP_70B:-0} != 1 ]]; then
  echo "== 2. Llama-3-70B-shaped ($LAYERS layers): TP$n and dp2 x tp$((n / 2))"
  config=$out/llama-3-70b-l$LAYERS.json
  python3 - "$PWD/models/configs/llama-3-70b.json" "$config" "$LAYERS" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["num_hidden_layers"] = int(sys.argv[3])
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY
  ckpt=$work/ckpt-llama-3-70b-l$LAYERS-bfloat16
  t0=$SECONDS
  [[ -f $ckpt/model.safetensors.index.json || -f $ckpt/model.safetensors ]] || \
    "$exe" make-checkpoint --config "$config" --out "$ckpt" --seed 1 --dtype bfloat16 | tail -1
  echo "checkpoint: $((SECONDS - t0)) s"
  # The committed specs' rules on this host's N GPUs, this checkpoint and workload.
  python3 - "$out" "$config" "$ckpt" "$n" "$BATCH" "$PROMPT" "$NEW" <<'PY'
import sys, yaml
out, config, ckpt, n, batch, prompt, new = sys.argv[1:3] + [sys.argv[3]] + [int(x) for x in sys.argv[4:]]
for name, mesh in [("llama-3-70b-tp8", {"tp": n}), ("llama-3-70b-dp2-tp4", {"dp": 2, "tp": n // 2})]:
    s = yaml.safe_load(open(f"specs/{name}.yaml"))
    s["model"].update(config=config, checkpoint=ckpt)
    s["mesh"] = mesh
    s["workload"] = {"batch": batch, "prompt_tokens": prompt, "new_tokens": new}
    s["name"] += f" (run on {n} GPUs)"
    yaml.safe_dump(s, open(f"{out}/{name}-n{n}.yaml", "w"), sort_keys=False)
PY
  specs=("$out/llama-3-70b-tp8-n$n.yaml" "$out/llama-3-70b-dp2-tp4-n$n.yaml")
  bench/executor_bench.sh --device cuda --executor "$exe" --out "$out/decode" "${specs[@]}" || status=1
  for spec in "${specs[@]}"; do
    name=$(basename "$spec" .yaml)
    t0=$SECONDS
    "$exe" run --spec "$spec" --device cuda --verify --format json >"$out/$name.verify.json" 2>"$out/$name.verify.err" \
      || { echo "$name --verify: exit $?"; tail -3 "$out/$name.verify.err"; status=1; continue; }
    python3 -c "import json,sys; v=json.load(open(sys.argv[1]))['verify']; print('%s --verify: relative error %.3g (tolerance %g), tokens identical %s, %s' % (sys.argv[2], v['relative_error'], v['tolerance'], v['tokens_identical'], 'PASSED' if v['passed'] else 'FAILED'))" \
      "$out/$name.verify.json" "$name"
    echo "  ($((SECONDS - t0)) s)"
  done
fi
echo "headline N=$n: $SECONDS s; results in $out (date $(date -u +%F), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
exit $status
