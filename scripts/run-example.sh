#!/usr/bin/env bash
# The main job, after setting up whatever is missing (scripts/setup.sh): check a spec, print its
# plan, draw it, and run it on CPU ranks with --verify against the unsharded model.
#   scripts/run-example.sh [SPEC] [PROMPT]
# Default: examples/smollm2-135m-tp3.yaml, the real SmolLM2-135M-Instruct over 3 CPU ranks (Gloo):
# PROMPT (default "The capital of France is") is a text request: the executor encodes it with the
# model's tokenizer.json, generates greedily and prints the text (build/example/results.jsonl). A spec whose checkpoint has
# no tokenizer.json (examples/tiny-*.yaml) gets a random checkpoint (make-checkpoint) and the
# spec's synthetic workload.
set -euo pipefail
cd "$(dirname "$0")/.."
spec="${1:-examples/smollm2-135m-tp3.yaml}"
prompt="${2:-The capital of France is}"
scripts/setup.sh || { echo "run-example: scripts/setup.sh failed" >&2; exit 2; }
planner=build/planner/planner
executor=build/executor/executor
python=.venv/bin/python3
out=build/example
mkdir -p "$out"

echo "== planner check $spec"
$planner check "$spec"
echo
echo "== planner plan $spec"
$planner plan "$spec"
$planner render "$spec" -o "$out/plan.svg"
$planner plan "$spec" --format json -o "$out/plan.json"
echo
echo "wrote $out/plan.svg and $out/plan.json"
[[ -x $executor ]] || exit 0

dir=$(dirname "$spec")
checkpoint=$(sed -n 's/^ *checkpoint: *\([^ #]*\).*/\1/p' "$spec" | head -1)
[[ -n $checkpoint ]] || exit 0
checkpoint=$dir/$checkpoint
if [[ -f $checkpoint/tokenizer.json ]]; then
  echo
  echo "== executor run --spec $spec --requests $out/requests.jsonl --output $out/results.jsonl --verify"
  echo "prompt: $prompt"
  # The prompt as text: the executor encodes it with the model's tokenizer.json and decodes the answer.
  $python -c 'import json, sys; print(json.dumps({"prompt": sys.argv[1], "max_tokens": 24}))' "$prompt" \
    >"$out/requests.jsonl"
  $executor run --spec "$spec" --device cpu --requests "$out/requests.jsonl" --output "$out/results.jsonl" --verify
  exit $?
fi
echo
echo "== executor make-checkpoint --config <the spec's config> --out $checkpoint"
config=$(sed -n 's/^ *config: *\([^ #]*\).*/\1/p' "$spec" | head -1)
$executor make-checkpoint --config "$dir/$config" --out "$checkpoint" --seed 0
echo
echo "== executor run --spec $spec --device cpu --verify"
$executor run --spec "$spec" --device cpu --verify
