#!/usr/bin/env bash
# Executor on GPUs for llava, mixtral, qwen2-moe and whisper against Hugging Face transformers: random
# checkpoints (tiny configs in float32, realistic sizes in bfloat16), a greedy reference
# (hf_reference.py) on the executor's own inputs, then `executor run --verify
# --logits-out` with sharded specs on 2 and 4 GPUs; tokens identical and logits within tolerance
# (compare.py), --verify against the unsharded run, and a summary table. Needs 4 GPUs,
# transformers, and the offline bundle in .bundle (as llama-3-8b-check.sh). docs/multimodal-gpu.md.
#   scripts/gpu/multimodal-check.sh [OUT_DIR]
# Knobs (environment):
#   FAMILIES="llava mixtral qwen2_moe whisper"   SIZES="tiny real"   TINY_DTYPES=float32   REAL_DTYPES=bfloat16
#   GPUS="2 4"        tiny configs: every spec on each of these GPU counts
#   REAL_GPUS=alt     realistic sizes: "alt" runs spec 1 on 2 GPUs and spec 2 on 4 GPUs (each spec
#                     once, to fit ~8 minutes); or a list such as "2 4" for every spec on each
#   BATCH=4 PROMPT=16 NEW=8 SEED=0    SKIP_BUILD=1 (reuse $WORK/build)   WORK=/tmp/shardplan-mm-work
# Realistic sizes: llava-1.5-7b (14 GB bf16), mixtral-8x7b-2layers (Mixtral-8x7B's widths, 2 of
# its 32 layers: 6 GB bf16), whisper-large-v3 (3 GB bf16). Checkpoints are kept in $WORK.
set -uo pipefail
cd "$(dirname "$0")/../.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
out=${1:-${OUT:-/tmp/shardplan-mm}}
work=${WORK:-/tmp/shardplan-mm-work}
mkdir -p "$out" "$work"
out=$(cd "$out" && pwd)
FAMILIES=${FAMILIES:-llava mixtral qwen2_moe whisper} SIZES=${SIZES:-tiny real}
TINY_DTYPES=${TINY_DTYPES:-float32} REAL_DTYPES=${REAL_DTYPES:-bfloat16}
GPUS=${GPUS:-2 4} REAL_GPUS=${REAL_GPUS:-alt}
BATCH=${BATCH:-4} PROMPT=${PROMPT:-16} NEW=${NEW:-8} SEED=${SEED:-0}
records=$out/records.jsonl
: >"$records"
status=0

[[ ${SKIP_BUILD:-0} == 1 ]] || scripts/gpu/build.sh "$work" "$out" || exit 2
exe=$work/build/executor/executor
planner=$work/build/planner/planner
[[ -x $exe ]] || { echo "no executor at $exe (unset SKIP_BUILD)"; exit 2; }
nvidia-smi -L
python3 scripts/reference/hf_reference.py selftest || exit 2
ngpu=$(nvidia-smi -L | grep -c '^GPU')

config_of() {  # config_of FAMILY SIZE
  case $1-$2 in
    llava-tiny) echo tiny-llava ;;       llava-real) echo llava-1.5-7b ;;
    mixtral-tiny) echo tiny-mixtral ;;   mixtral-real) echo mixtral-8x7b-2layers ;;
    whisper-tiny) echo tiny-whisper ;;   whisper-real) echo whisper-large-v3 ;;
    qwen2_moe-tiny) echo tiny-qwen2-moe ;; qwen2_moe-real) echo qwen1.5-moe-a2.7b-2layers ;;
  esac
}
hf_family_of() {  # the family argument of hf_reference.py
  case $1 in qwen2_moe) echo causal ;; *) echo "$1" ;; esac
}
vocab_of() {  # vocab_of CONFIG_JSON
  python3 -c "import json,sys; c=json.load(open(sys.argv[1])); print(c.get('vocab_size') or c['text_config']['vocab_size'])" "$1"
}

# The two specs of a family: spec_rules FAMILY INDEX N VOCAB -> "NAME|MESH_AXIS|RULES" (YAML flow rules)
spec_rules() {
  local family=$1 i=$2 n=$3 vocab=$4
  case $family-$i in
    llava-1) echo "vision-data-lm-tensor|tp|{kind: encoder, mode: data, axes: [tp]}; {kind: [embedding, attention, mlp, lm_head], mode: tensor, axes: [tp]}" ;;
    llava-2) echo "vision-tensor-lm-tensor|tp|{kind: [encoder, embedding, attention, mlp, lm_head], mode: tensor, axes: [tp]}" ;;
    mixtral-1) echo "moe-expert-attn-tensor|ep|{kind: [embedding, attention, lm_head], mode: tensor, axes: [ep]}; {kind: moe, mode: expert, axes: [ep]}" ;;
    mixtral-2) echo "attn-data-moe-expert|ep|{kind: attention, mode: data, axes: [ep]}; {kind: moe, mode: expert, axes: [ep]}" ;;
    qwen2_moe-1) echo "moe-expert-shared-tensor|tp|{kind: [embedding, attention, lm_head], mode: tensor, axes: [tp]}; {kind: moe, mode: expert, axes: [tp], shared_expert: {mode: tensor, axes: [tp]}}" ;;
    qwen2_moe-2) echo "attn-data-moe-expert|ep|{kind: attention, mode: data, axes: [ep]}; {kind: moe, mode: expert, axes: [ep]}" ;;
    whisper-1|whisper-2)
      # NOTE: whisper-large-v3's vocabulary (51866) does not divide by 4: embedding and lm_head
      # (tied) stay replicated where it does not divide (the planner rejects it otherwise).
      local vocab_kinds="embedding, lm_head, "
      (( vocab % n == 0 )) || vocab_kinds=""
      if [[ $i == 1 ]]; then
        echo "all-tensor|tp|{kind: [encoder, ${vocab_kinds}attention, cross_attention, mlp], mode: tensor, axes: [tp]}"
      else
        echo "encoder-data-rest-tensor|tp|{kind: [${vocab_kinds}attention, cross_attention, mlp], mode: tensor, axes: [tp]}; {kind: encoder, mode: data, axes: [tp]}"
      fi ;;
  esac
}

write_spec() {  # write_spec FILE NAME AXIS N RULES CONFIG CKPT DTYPE FAMILY
  local file=$1 name=$2 axis=$3 n=$4 rules=$5 config=$6 ckpt=$7 dtype=$8 family=$9
  {
    echo "version: 1"
    echo "name: $(basename "$config" .json), $name over $n GPUs"
    echo "model:"
    echo "  config: $config"
    echo "  checkpoint: $ckpt"
    echo "  dtype: $dtype"
    echo "mesh: {$axis: $n}"
    echo "modules:"
    local IFS=';'
    for r in $rules; do echo "  - ${r# }"; done
    echo "workload:"
    echo "  batch: $BATCH"
    echo "  prompt_tokens: $PROMPT"
    echo "  new_tokens: $NEW"
    [[ $family == llava ]] && echo "  images_per_request: $IMAGES"
  } >"$file"
}

for family in $FAMILIES; do
  for size in $SIZES; do
    cfgname=$(config_of "$family" "$size")
    config=$PWD/models/configs/$cfgname.json
    if [[ $cfgname == qwen1.5-moe-a2.7b-2layers ]]; then
      config=$work/$cfgname.json
      python3 -c "import json,sys; c=json.load(open(sys.argv[1])); c['num_hidden_layers']=2; json.dump(c, open(sys.argv[2], 'w'), indent=2)" \
        "$PWD/models/configs/qwen1.5-moe-a2.7b.json" "$config"
    fi
    if [[ $cfgname == mixtral-8x7b-2layers ]]; then
      # Mixtral-8x7B's widths with 2 of its 32 layers (a 6 GB bf16 checkpoint); written here, not
      # kept in models/configs (which holds the real models' configs).
      config=$work/$cfgname.json
      python3 -c "import json,sys; c=json.load(open(sys.argv[1])); c['num_hidden_layers']=2; json.dump(c, open(sys.argv[2], 'w'), indent=2)" \
        "$PWD/models/configs/mixtral-8x7b.json" "$config"
    fi
    vocab=$(vocab_of "$config")
    # tiny-llava: 16 tokens per image, 2 images per request; llava-1.5-7b: 576 tokens, 1 image.
    if [[ $size == tiny ]]; then IMAGES=2; dtypes=$TINY_DTYPES; else IMAGES=1; dtypes=$REAL_DTYPES; fi
    for dtype in $dtypes; do
      tag=$cfgname-$dtype
      echo "== $tag: checkpoint"
      ckpt=$work/ckpt-$tag
      t0=$SECONDS
      [[ -f $ckpt/model.safetensors.index.json || -f $ckpt/model.safetensors ]] || \
        "$exe" make-checkpoint --config "$config" --out "$ckpt" --seed 1 --dtype "$dtype" | tail -1
      echo "make-checkpoint: $((SECONDS - t0)) s"

      echo "== $tag: transformers reference"
      t0=$SECONDS
      hf=$work/hf-$tag
      rm -f "$hf.json"
      python3 scripts/reference/hf_reference.py "$(hf_family_of "$family")" "$ckpt" "$BATCH" "$PROMPT" "$NEW" "$dtype" "$hf" \
        "$SEED" "$IMAGES" >"$out/hf-$tag.log" 2>&1
      grep -v -i -E "warn|Loading weights" "$out/hf-$tag.log" | tail -3
      [[ -s $hf.json ]] || { echo "$tag: no transformers reference (see $out/hf-$tag.log)"; status=1; }
      echo "transformers: $((SECONDS - t0)) s"

      for i in 1 2; do
        if [[ $size == real && $REAL_GPUS == alt ]]; then
          counts=$(( i == 1 ? 2 : 4 ))
        elif [[ $size == real ]]; then
          counts=$REAL_GPUS
        else
          counts=$GPUS
        fi
        for n in $counts; do
          (( n <= ngpu )) || { echo "skip: $n GPUs > $ngpu"; continue; }
          IFS='|' read -r sname axis rules <<<"$(spec_rules "$family" "$i" "$n" "$vocab")"
          run=$tag-$sname-n$n
          write_spec "$work/$run.yaml" "$sname" "$axis" "$n" "$rules" "$config" "$ckpt" "$dtype" "$family"
          cp "$work/$run.yaml" "$out/$run.yaml"
          if [[ -x $planner ]] && ! "$planner" check "$work/$run.yaml" >"$out/$run.check" 2>&1; then
            echo "$run: planner check failed:"; tail -5 "$out/$run.check"; status=1; continue
          fi
          t0=$SECONDS
          "$exe" run --spec "$work/$run.yaml" --device cuda --verify --format json --seed "$SEED" \
            --logits-out "$work/$run.npy" >"$out/$run.json" 2>"$out/$run.err"
          rc=$?
          [[ $rc -eq 0 ]] || { echo "$run: executor exit $rc:"; tail -3 "$out/$run.err"; status=1; }
          if [[ -s $out/$run.json && -s $hf.json ]]; then
            python3 scripts/gpu/compare.py "$out/$run.json" "$work/$run.npy" "$hf" "$dtype" "$records" || status=1
          else
            echo "{\"spec\": \"$work/$run.yaml\", \"dtype\": \"$dtype\", \"world_size\": $n, \"passed\": false, \"error\": \"executor exit $rc\"}" >>"$records"
          fi
          echo "  ($((SECONDS - t0)) s)"
        done
      done
    done
  done
done

echo "== summary ($SECONDS s in all)"
python3 - "$records" <<'PY' | tee "$out/summary.md"
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| run | GPUs | dtype | vs transformers: rel. error (tol.) | tokens identical | --verify rel. error | TTFT ms | TPOT ms | result |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    name = os.path.basename(r["spec"]).removesuffix(".yaml")
    if "error" in r:
        print(f"| {name} | {r['world_size']} | {r['dtype']} | - | - | - | - | - | FAIL ({r['error']}) |")
        continue
    v = r.get("verify") or {}
    ver = f"{v.get('relative_error', float('nan')):.2g} {'ok' if v.get('passed') else 'FAILED'}" if v else "-"
    tok = "yes" if r["tokens_identical"] else f"no ({len(r['mismatches'])} req.)"
    print(f"| {name} | {r['world_size']} | {r['dtype']} | {r['hf_relative_error']:.2g} ({r['hf_tolerance']:g}) | {tok} "
          f"| {ver} | {r['ttft_ms']:.1f} | {r['tpot_ms']:.2f} | {'PASS' if r['passed'] and v.get('passed') else 'FAIL'} |")
PY
exit $status
