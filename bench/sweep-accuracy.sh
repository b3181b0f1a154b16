#!/usr/bin/env bash
# How right planner sweep's predictions are on this machine: calibrates the device
# (`executor calibrate`), sweeps several models and workloads (`planner sweep --hardware` the
# calibrated file, world sizes 1 .. the devices here), runs every emitted plan (`executor sweep`
# over all the sweep folders at once) and writes the measured-against-predicted table (Spearman of
# tokens/s, top-1 regret within each workload, decode and first-token errors, memory error) and
# its two charts.
#
#   bench/sweep-accuracy.sh [--device cpu|cuda] [--worlds "1 2"] [--top K] [--only NAME,...]
#                           [--resume] [--hardware FILE] [--executor PATH] [--planner PATH]
#                           [--out DIR] [--doc FILE.md]
# --resume: reuse the runs of an earlier invocation into the same --out (same spec text), e.g. to
# score a changed cost model against the same measurements; --hardware: skip the calibration and
# use FILE (an earlier run's OUT/hardware.yaml).
# cuda: Llama-3-8B, Mixtral-8x7B's widths with 2 layers and llava-1.5-7b in bfloat16, several
# workloads each (the list below), worlds 1 .. min(2, GPUs); the page docs/sweep-accuracy.md with
# its charts beside it. cpu: the tiny configs in float32 on worlds 1 and 2 (a smoke run; CPU
# timings say little about the H200 cost model).
set -euo pipefail
cd "$(dirname "$0")/.."
device=cpu worlds="" top=4 only="" doc="" resume=""
executor=build/executor/executor planner=build/planner/planner out=build/bench-sweep-accuracy
while (($#)); do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --worlds) worlds=$2; shift 2 ;;
    --top) top=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --resume) resume=--resume; shift ;;
    --hardware) hardware_in=$2; shift 2 ;;
    --executor) executor=$2; shift 2 ;;
    --planner) planner=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --doc) doc=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "sweep-accuracy.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ -x $executor ]] || { echo "sweep-accuracy.sh: no executor at $executor (build first)" >&2; exit 2; }
[[ -x $planner ]] || { echo "sweep-accuracy.sh: no planner at $planner (build first)" >&2; exit 2; }
log() { echo "sweep-accuracy: $*" >&2; }
mkdir -p "$out/configs" "$out/sweeps"
rm -rf "$out/sweeps"/*

# Mixtral-8x7B's widths (hidden 4096, 8 experts of 14336) with 2 layers: fits one GPU with room
# for every workload, and keeps the MoE's cost (routing, expert GEMMs) in the measurement.
python3 - "$out/configs" <<'EOF'
import json, sys
c = json.load(open("models/configs/mixtral-8x7b.json"))
c["num_hidden_layers"] = 2
json.dump(c, open(sys.argv[1] + "/mixtral-8x7b-2l.json", "w"), indent=1)
EOF

# name config dtype batch prompt new images
if [[ $device == cuda ]]; then
  : "${doc:=docs/sweep-accuracy.md}"
  if [[ -z $worlds ]]; then
    gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
    ((gpus >= 1)) || { echo "sweep-accuracy.sh: no GPU (nvidia-smi -L lists none)" >&2; exit 2; }
    worlds=$(seq 1 $((gpus < 2 ? gpus : 2)) | xargs)
  fi
  workloads=(
    "llama-b1 models/configs/llama-3-8b.json bfloat16 1 128 64 0"
    "llama-b8 models/configs/llama-3-8b.json bfloat16 8 512 64 0"
    "llama-b32 models/configs/llama-3-8b.json bfloat16 32 128 64 0"
    "llama-b64 models/configs/llama-3-8b.json bfloat16 64 256 32 0"
    "llama-long models/configs/llama-3-8b.json bfloat16 4 4096 32 0"
    "llama-prefill models/configs/llama-3-8b.json bfloat16 16 2048 4 0"
    "mixtral-b1 $out/configs/mixtral-8x7b-2l.json bfloat16 1 128 32 0"
    "mixtral-b16 $out/configs/mixtral-8x7b-2l.json bfloat16 16 256 32 0"
    "mixtral-b64 $out/configs/mixtral-8x7b-2l.json bfloat16 64 128 32 0"
    "mixtral-prefill $out/configs/mixtral-8x7b-2l.json bfloat16 8 2048 4 0"
    "llava-b1 models/configs/llava-1.5-7b.json bfloat16 1 64 32 1"
    "llava-b8 models/configs/llava-1.5-7b.json bfloat16 8 64 32 1"
    "llava-b4x4 models/configs/llava-1.5-7b.json bfloat16 4 64 16 4"
    "llava-b32 models/configs/llava-1.5-7b.json bfloat16 32 64 32 1"
    "llava-text models/configs/llava-1.5-7b.json bfloat16 16 256 32 0"
    "llava-long-out models/configs/llava-1.5-7b.json bfloat16 2 64 128 1"
  )
elif [[ $device == cpu ]]; then
  : "${doc:=$out/sweep-accuracy.md}"
  [[ -n $worlds ]] || worlds="1 2"
  workloads=(
    "llama-b1 models/configs/tiny-llama.json float32 1 16 8 0"
    "llama-b4 models/configs/tiny-llama.json float32 4 32 8 0"
    "mixtral-b4 models/configs/tiny-mixtral.json float32 4 16 8 0"
    "llava-b2 models/configs/tiny-llava.json float32 2 16 8 1"
  )
else
  echo "sweep-accuracy.sh: --device must be cpu or cuda, not '$device'" >&2; exit 2
fi

hardware=$out/hardware.yaml
if [[ -n ${hardware_in:-} ]]; then
  [[ $(realpath "$hardware_in") == $(realpath -m "$hardware") ]] || cp "$hardware_in" "$hardware"
else
  # The collectives over as many ranks as the largest world swept.
  ranks=$(echo $worlds | tr ' ' '\n' | sort -n | tail -1)
  log "calibrating the $device device (executor calibrate --ranks $ranks)"
  "$executor" calibrate --device "$device" --ranks "$ranks" -o "$hardware" >"$out/calibrate.log" 2>&1 ||
    { cat "$out/calibrate.log" >&2; exit 2; }
fi

dirs=()
for w in "${workloads[@]}"; do
  read -r name config dtype batch prompt new images <<<"$w"
  if [[ -n $only && ",$only," != *",$name,"* ]]; then continue; fi
  for world in $worlds; do
    dir=$out/sweeps/$name-w$world
    args=(sweep --config "$config" --world "$world" --dtype "$dtype" --hardware "$hardware" --batch "$batch"
      --prompt-tokens "$prompt" --new-tokens "$new" --top "$top" -o "$dir")
    ((images > 0)) && args+=(--images-per-request "$images")
    if "$planner" "${args[@]}" >"$out/sweeps/$name-w$world.log" 2>&1; then
      dirs+=("$dir")
    else
      log "$name on $world: planner sweep found no plan ($(tail -1 "$out/sweeps/$name-w$world.log"))"
    fi
  done
done
((${#dirs[@]})) || { log "no sweep produced a plan"; exit 2; }
log "${#dirs[@]} sweeps; running their plans (executor sweep)"
rc=0
"$executor" sweep "${dirs[@]}" --device "$device" -o "$out/measured" $resume || rc=$?

# The page: the combined table, the calibrated figures, the charts.
mkdir -p "$(dirname "$doc")"
stem=$(basename "$doc" .md)
cp "$out/measured/predicted-vs-measured.svg" "$(dirname "$doc")/$stem-predicted-vs-measured.svg"
cp "$out/measured/pareto-measured.svg" "$(dirname "$doc")/$stem-pareto.svg"
{
  echo "# planner sweep: predicted against measured ($device)"
  echo
  echo "Written by \`bench/sweep-accuracy.sh --device $device\` on $(date -u +%Y-%m-%d)," \
    "commit ${SHARDPLAN_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}," \
    "$(sed -n 's/^name: //p' "$hardware" | head -1)," \
    "worlds: $worlds. The hardware file is \`executor calibrate\`'s from the same run; every plan is" \
    "one \`executor run\` of random weights (the workload in the sweep's name: batch, prompt, new tokens," \
    "images per request are in bench/sweep-accuracy.sh).${SHARDPLAN_RESCORED:+ $SHARDPLAN_RESCORED}"
  echo
  echo '```'
  cat "$out/measured/measured.txt"
  echo '```'
  echo
  echo "Calibrated hardware file:"
  echo
  echo '```yaml'
  cat "$hardware"
  echo '```'
  echo
  if [[ $worlds == 1 ]]; then
    echo "Only one-device plans were measured (one GPU here): each workload has one plan, so the top-1"
    echo "regret (which needs two plans of one workload) and plans over several GPUs are not in this run."
    echo
  fi
  echo "![predicted against measured tokens/s]($stem-predicted-vs-measured.svg)"
  echo "![Pareto: tokens/s per GPU against tokens/s per request]($stem-pareto.svg)"
} >"$doc"
log "wrote $doc"
exit $rc
