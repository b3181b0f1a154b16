#!/usr/bin/env bash
# The executor against its peers in one invocation, on the same device(s), the same random weights
# and the same prompts: `executor run` (tensor-parallel over 1, 2, ... devices), transformers eager,
# and transformers with a static KV cache and its automatic torch.compile (bench/hf_peer.py), next
# to the bandwidth bound measured in the same run (the rank's weight bytes / `executor bandwidth`).
# Writes OUT/performance.json, a Markdown page (table of ms per decode step, tokens/s and the
# ratios to each peer and to the bound) and an SVG chart beside it.
#
#   bench/performance.sh [--device cpu|cuda] [--config CFG.json] [--dtype D] [--batches "1 32"]
#                        [--prompt N] [--new N] [--tp "1 2"] [--long "B:P ..."] [--prefill "B:P ..."]
#                        [--executor PATH] [--python PATH] [--peers "eager static-compile"]
#                        [--out DIR] [--doc FILE.md]
# Defaults: cuda: Llama-3-8B's config in bfloat16, batches 1 and 32, prompt 128, 64 new tokens,
# TP 1, a long-context decode of batch 8 with prompt 4096 (its bound counts the KV cache read),
# a prefill of 8 x 2048 (against the matmul peak), the page docs/performance.md; cpu: tiny-llama
# in float32, batches 1 and 4, prompt 16, 8 new tokens, TP 1 and 2, long 2:64, prefill 2:32, the
# page OUT/performance.md (what CI runs). The bandwidth and the matmul peak come from
# `executor calibrate` in the same invocation.
set -euo pipefail
cd "$(dirname "$0")/.."
device=cpu config="" dtype="" batches="" prompt="" new="" tps="" doc="" peers="eager static-compile"
long=unset prefill=unset
executor=build/executor/executor
python=$([[ -x .venv/bin/python3 ]] && echo .venv/bin/python3 || echo python3)
out=build/bench-performance
while (($#)); do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --dtype) dtype=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --prompt) prompt=$2; shift 2 ;;
    --new) new=$2; shift 2 ;;
    --tp) tps=$2; shift 2 ;;
    --long) long=$2; shift 2 ;;
    --prefill) prefill=$2; shift 2 ;;
    --peers) peers=$2; shift 2 ;;
    --executor) executor=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --doc) doc=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "performance.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [[ $device == cuda ]]; then
  : "${config:=models/configs/llama-3-8b.json}" "${dtype:=bfloat16}" "${batches:=1 32}" "${prompt:=128}" \
    "${new:=64}" "${tps:=1}" "${doc:=docs/performance.md}"
  [[ $long != unset ]] || long="8:4096"
  [[ $prefill != unset ]] || prefill="8:2048"
elif [[ $device == cpu ]]; then
  : "${config:=models/configs/tiny-llama.json}" "${dtype:=float32}" "${batches:=1 4}" "${prompt:=16}" \
    "${new:=8}" "${tps:=1 2}" "${doc:=$out/performance.md}"
  [[ $long != unset ]] || long="2:64"
  [[ $prefill != unset ]] || prefill="2:32"
else
  echo "performance.sh: --device must be cpu or cuda, not '$device'" >&2; exit 2
fi
[[ -x $executor ]] || { echo "performance.sh: no executor at $executor (build first)" >&2; exit 2; }
[[ -f $config ]] || { echo "performance.sh: no config $config" >&2; exit 2; }
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
mkdir -p "$out"
out=$(cd "$out" && pwd)
config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
log() { echo "performance: $*" >&2; }

ckpt=$out/ckpt-$(basename "$config" .json)-$dtype
if [[ ! -f $ckpt/model.safetensors && ! -f $ckpt/model.safetensors.index.json ]]; then
  log "random checkpoint of $(basename "$config") in $dtype"
  "$executor" make-checkpoint --config "$config" --out "$ckpt" --seed 1 --dtype "$dtype" >/dev/null
fi
cp "$config" "$ckpt/config.json"  # transformers reads it beside the weights

log "calibrate the $device (bandwidth, matmul peak)"
"$executor" calibrate --device "$device" --format json >"$out/calibrate.json"

runs=()
# run_executor NAME TP BATCH PROMPT NEW: one `executor run` of a tensor-parallel spec.
run_executor() {
  local name=$1 tp=$2 b=$3 p=$4 n=$5
  cat >"$out/$name.yaml" <<YAML
version: 1
name: $(basename "$config" .json) tensor-parallel over $tp, batch $b, prompt $p, $n new tokens
model:
  config: $config
  checkpoint: $ckpt
  dtype: $dtype
mesh: {tp: $tp}
modules:
  - {kind: [embedding, attention, mlp, lm_head], mode: tensor, axes: [tp]}
workload:
  batch: $b
  prompt_tokens: $p
  new_tokens: $n
YAML
  log "executor run: $name"
  if "$executor" run --spec "$out/$name.yaml" --device "$device" --format json >"$out/$name.json" 2>"$out/$name.err"; then
    runs+=("$name")
  else
    log "executor run failed for $name (see $out/$name.err)"; tail -3 "$out/$name.err" >&2
  fi
}
for tp in $tps; do
  for b in $batches; do run_executor "executor-tp$tp-b$b" "$tp" "$b" "$prompt" "$new"; done
done
for bp in $long; do run_executor "long-tp1-b${bp%%:*}-p${bp##*:}" 1 "${bp%%:*}" "${bp##*:}" "$new"; done
for bp in $prefill; do run_executor "prefill-tp1-b${bp%%:*}-p${bp##*:}" 1 "${bp%%:*}" "${bp##*:}" 0; done
for b in $batches; do
  for mode in $peers; do
    name=hf-$mode-b$b
    log "transformers $mode: batch $b"
    if "$python" bench/hf_peer.py "$ckpt" "$b" "$prompt" "$new" "$dtype" "$([[ $device == cuda ]] && echo cuda:0 || echo cpu)" \
        "$mode" >"$out/$name.json" 2>"$out/$name.err"; then
      runs+=("$name")
    else
      log "transformers $mode failed for batch $b (see $out/$name.err)"; tail -3 "$out/$name.err" >&2
    fi
  done
done

"$python" bench/performance_report.py "$out" "$doc" "$device" "$config" "$dtype" "$prompt" "$new" "${runs[@]}"
