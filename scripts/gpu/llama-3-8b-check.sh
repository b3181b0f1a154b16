#!/usr/bin/env bash
# Executor on GPUs with a Llama-3-8B-shaped random checkpoint: TP1, TP2, TP4 and dp2 x tp2
# against Hugging Face transformers' greedy generate on the same weights and prompts (tokens
# identical, logits within the bf16 tolerance; in half precision both runs also against
# transformers in float32 on the same weights, scripts/gpu/accuracy.py), --verify against the
# unsharded run, and the decode benchmark against the bandwidth bound. Runs the layouts that fit the GPUs present (all
# four on 4); needs transformers and the offline bundle in .bundle (scripts/offline-bundle.sh
# download).
#   scripts/gpu/llama-3-8b-check.sh [OUT_DIR]
# WORK=DIR builds there (default /tmp/shardplan-gpu-work); SKIP_BUILD=1 reuses DIR/build.
set -uo pipefail
cd "$(dirname "$0")/../.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
out=${1:-${OUT:-/tmp/shardplan-gpu}}
mkdir -p "$out"
work=${WORK:-/tmp/shardplan-gpu-work}
mkdir -p "$work"
BATCH=${BATCH:-4} PROMPT=${PROMPT:-32} NEW=${NEW:-16} DTYPES=${DTYPES:-float32 bfloat16}

[[ -n ${SKIP_BUILD:-} ]] || scripts/gpu/build.sh "$work" "$out" || exit 2
exe=$work/build/executor/executor
nvidia-smi -L
gpus=$(nvidia-smi -L | grep -c '^GPU')
declare -A world=([tp1]=1 [tp2]=2 [tp4]=4 [dp2-tp2]=4)
layouts=()
for s in tp1 tp2 tp4 dp2-tp2; do
  if (( ${world[$s]} <= gpus )); then layouts+=("$s"); else echo "$s: skipped (${world[$s]} GPUs, $gpus here)"; fi
done

status=0
spec() {  # spec NAME MESH BATCH_AXES DTYPE CHECKPOINT
  cat >"$work/$1.yaml" <<YAML
version: 1
name: Llama-3-8B-shaped, $1
model:
  config: $PWD/models/configs/llama-3-8b.json
  checkpoint: $5
  dtype: $4
mesh: {$2}
batch_axes: [$3]
modules:
  - kind: [embedding, attention, mlp, lm_head]
    mode: tensor
    axes: [tp]
workload:
  batch: $BATCH
  prompt_tokens: $PROMPT
  new_tokens: $NEW
YAML
}

for dtype in $DTYPES; do
  echo "== $dtype: checkpoint"
  ckpt=$work/llama-3-8b-$dtype
  t0=$SECONDS
  [[ -f $ckpt/model.safetensors.index.json ]] || \
    "$exe" make-checkpoint --config models/configs/llama-3-8b.json --out "$ckpt" --seed 1 --dtype "$dtype" | tail -1
  echo "make-checkpoint: $((SECONDS - t0)) s"

  echo "== $dtype: transformers reference"
  t0=$SECONDS
  python3 scripts/gpu/hf_generate.py "$ckpt" "$BATCH" "$PROMPT" "$NEW" "$dtype" "$work/hf-$dtype" 2>&1 \
    | grep -v -i -E "warn|Loading weights" | tail -3
  echo "transformers generate: $((SECONDS - t0)) s"
  if [[ $dtype != float32 ]]; then
    # The reference both half-precision runs are measured against (scripts/gpu/accuracy.py).
    python3 scripts/gpu/hf_generate.py "$ckpt" "$BATCH" "$PROMPT" "$NEW" float32 "$work/hf-float32-on-$dtype" 2>&1 \
      | grep -v -i -E "warn|Loading weights" | tail -1
  fi

  spec "$dtype-tp1" "tp: 1" "" "$dtype" "$ckpt"
  spec "$dtype-tp2" "tp: 2" "" "$dtype" "$ckpt"
  spec "$dtype-tp4" "tp: 4" "" "$dtype" "$ckpt"
  spec "$dtype-dp2-tp2" "dp: 2, tp: 2" "dp" "$dtype" "$ckpt"

  echo "== $dtype: executor vs transformers, and --verify vs the unsharded run"
  for s in "${layouts[@]}"; do
    n=$dtype-$s
    t0=$SECONDS
    "$exe" run --spec "$work/$n.yaml" --device cuda --verify --format json --logits-out "$work/$n.npy" \
      >"$out/$n.json" 2>"$out/$n.err"
    rc=$?
    [[ $rc -eq 0 ]] || { echo "$n: executor exit $rc:"; tail -3 "$out/$n.err"; status=1; }
    [[ -s $out/$n.json ]] || continue
    python3 scripts/gpu/compare.py "$out/$n.json" "$work/$n.npy" "$work/hf-$dtype" "$dtype" || status=1
    [[ $dtype == float32 ]] || python3 scripts/gpu/accuracy.py "$out/$n.json" "$work/$n.npy" "$work/hf-$dtype" "$work/hf-float32-on-$dtype"
    python3 -c "import json; v=json.load(open('$out/$n.json')).get('verify'); print('  --verify: relative error %.3g (tolerance %g), largest difference %.3g, tokens identical %s, %s' % (v['relative_error'], v['tolerance'], v['max_abs_diff'], v['tokens_identical'], 'PASSED' if v['passed'] else 'FAILED'))"
    echo "  ($((SECONDS - t0)) s)"
  done
done

echo "== decode benchmark"
b=bfloat16
specs=()
for s in "${layouts[@]}"; do specs+=("$work/$b-$s.yaml"); done
bench/executor_bench.sh --device cuda --executor "$exe" --out "$out/bench" "${specs[@]}" 2>/dev/null || status=1
exit $status
