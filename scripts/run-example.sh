#!/usr/bin/env bash
# The main job, after setting up whatever is missing (scripts/setup.sh): check a spec, print its
# plan, draw it, and run it on CPU ranks with --verify against the unsharded model.
#   scripts/run-example.sh [SPEC] [PROMPT]
# Default: examples/smollm2-135m-tp3.yaml, the real SmolLM2-135M-Instruct over 3 CPU ranks (Gloo):
# PROMPT (default "The capital of France is") goes through the model's tokenizer, the executor
# generates greedily, and the text comes back through the tokenizer. A spec whose checkpoint has
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
  echo "== executor run --spec $spec --requests $out/requests.jsonl --verify"
  echo "prompt: $prompt"
  $python - "$checkpoint" "$prompt" "$out/requests.jsonl" <<'PY'
import json, sys
from tokenizers import Tokenizer
ids = Tokenizer.from_file(sys.argv[1] + "/tokenizer.json").encode(sys.argv[2]).ids
open(sys.argv[3], "w").write(json.dumps({"prompt_token_ids": ids, "max_tokens": 24}) + "\n")
print(f"prompt token ids: {ids}")
PY
  status=0
  $executor run --spec "$spec" --device cpu --requests "$out/requests.jsonl" --verify --format json \
    >"$out/run.json" || status=$?
  [[ -s $out/run.json ]] || exit $status
  $python - "$checkpoint" "$prompt" "$out/run.json" <<'PY'
import json, sys
from tokenizers import Tokenizer
tokenizer = Tokenizer.from_file(sys.argv[1] + "/tokenizer.json")
run = json.load(open(sys.argv[3]))
ids = run["generated_token_ids"][0]
print(f"generated token ids: {ids}")
print(f"generated text: {sys.argv[2]}{tokenizer.decode(ids)}")
v = run.get("verify") or {}
print(f"{run['world_size']} ranks, TTFT {run['ttft_ms']['median']:.1f} ms, "
      f"{run['tpot_ms']['median']:.1f} ms per token; --verify against the unsharded model: "
      f"relative error {v.get('relative_error', float('nan')):.2e} (tolerance {v.get('tolerance', float('nan')):g}): "
      + ("PASSED" if v.get("passed") else "FAILED"))
PY
  exit $status
fi
echo
echo "== executor make-checkpoint --config <the spec's config> --out $checkpoint"
config=$(sed -n 's/^ *config: *\([^ #]*\).*/\1/p' "$spec" | head -1)
$executor make-checkpoint --config "$dir/$config" --out "$checkpoint" --seed 0
echo
echo "== executor run --spec $spec --device cpu --verify"
$executor run --spec "$spec" --device cpu --verify
