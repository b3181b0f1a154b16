#!/usr/bin/env bash
# Vision tower `data` vs `tensor` on N GPUs: llava-1.5-7b-shaped bf16 random checkpoint, the
# language model tensor-parallel over all N GPUs, the vision tower either data-parallel (each GPU
# encodes its share of the images whole) or tensor-parallel over the same N GPUs; 1, 4 and 9 images
# per request. Reports encoder images/s, TTFT and output tokens/s (markdown + SVG bar chart), and
# keeps the specs and `executor run --format json` outputs in OUT_DIR. docs/multimodal-gpu.md.
#   scripts/gpu/vision-bench.sh N_GPUS [OUT_DIR]
# Knobs: IMAGES="1 4 9" BATCH=8 PROMPT=16 NEW=16 MODES="data tensor" SKIP_BUILD=1 (reuse
# $WORK/build) WORK=/tmp/shardplan-mm-work (shared with multimodal-check.sh: build, checkpoint).
set -uo pipefail
cd "$(dirname "$0")/../.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
n=${1:?usage: vision-bench.sh N_GPUS [OUT_DIR]}
out=${2:-${OUT:-/tmp/shardplan-vision-bench}}/n$n
work=${WORK:-/tmp/shardplan-mm-work}
mkdir -p "$out" "$work"
out=$(cd "$out" && pwd)
IMAGES=${IMAGES:-1 4 9} BATCH=${BATCH:-8} PROMPT=${PROMPT:-16} NEW=${NEW:-16} MODES=${MODES:-data tensor}
status=0

[[ ${SKIP_BUILD:-0} == 1 ]] || scripts/gpu/build.sh "$work" "$out" || exit 2
exe=$work/build/executor/executor
[[ -x $exe ]] || { echo "no executor at $exe (unset SKIP_BUILD)"; exit 2; }
ngpu=$(nvidia-smi -L | grep -c '^GPU')
(( n <= ngpu )) || { echo "vision-bench: $n GPUs asked, $ngpu present"; exit 2; }

# NOTE: 9 images x 576 tokens + the prompt exceed llava-1.5-7b's max_position_embeddings (4096);
# RoPE has no learned positions, so the benchmark's copy of the config raises it (same weights).
max_images=$(printf '%s\n' $IMAGES | sort -n | tail -1)
config=$out/llava-1.5-7b-bench.json
python3 - "$PWD/models/configs/llava-1.5-7b.json" "$config" "$(( max_images * 576 + PROMPT + NEW ))" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["text_config"]["max_position_embeddings"] = max(c["text_config"]["max_position_embeddings"], int(sys.argv[3]))
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY

ckpt=$work/ckpt-llava-1.5-7b-bfloat16
t0=$SECONDS
[[ -f $ckpt/model.safetensors.index.json || -f $ckpt/model.safetensors ]] || \
  "$exe" make-checkpoint --config models/configs/llava-1.5-7b.json --out "$ckpt" --seed 1 --dtype bfloat16 | tail -1
echo "checkpoint: $((SECONDS - t0)) s"

for images in $IMAGES; do
  for mode in $MODES; do
    run=vision-$mode-i$images-n$n
    cat >"$out/$run.yaml" <<YAML
version: 1
name: llava-1.5-7b, vision tower $mode over $n GPUs, language model tensor over $n GPUs, $images images per request
model:
  config: $config
  checkpoint: $ckpt
  dtype: bfloat16
mesh: {tp: $n}
modules:
  - kind: encoder
    mode: $mode
    axes: [tp]
  - kind: [embedding, attention, mlp, lm_head]
    mode: tensor
    axes: [tp]
workload:
  batch: $BATCH
  prompt_tokens: $PROMPT
  new_tokens: $NEW
  images_per_request: $images
YAML
    t0=$SECONDS
    "$exe" run --spec "$out/$run.yaml" --device cuda --profile --format json >"$out/$run.json" 2>"$out/$run.err"
    rc=$?
    [[ $rc -eq 0 ]] || { echo "$run: executor exit $rc:"; tail -3 "$out/$run.err"; status=1; rm -f "$out/$run.json"; }
    echo "$run: $((SECONDS - t0)) s"
  done
done

python3 scripts/gpu/bench_report.py vision "$out/vision-bench-n$n" "$out"/vision-*-n"$n".json || status=1
echo "vision-bench N=$n: $SECONDS s; $out/vision-bench-n$n.md, .svg"
exit $status
