#!/usr/bin/env bash
# The main job on a small embedded example: check a spec, print its plan, draw it, and (when the
# executor is built) write a random checkpoint and run the spec's workload on CPU ranks with
# --verify against the unsharded model.
#   scripts/run-example.sh [SPEC]     (default examples/tiny-llama-dp2-tp2.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."
spec="${1:-examples/tiny-llama-dp2-tp2.yaml}"
planner=build/planner/planner
executor=build/executor/executor
[[ -x $planner ]] || { echo "run-example: build first: scripts/setup.sh" >&2; exit 2; }

echo "== planner check $spec"
$planner check "$spec"
echo
echo "== planner plan $spec"
$planner plan "$spec"
mkdir -p build/example
$planner render "$spec" -o build/example/plan.svg
$planner plan "$spec" --format json -o build/example/plan.json
echo
echo "wrote build/example/plan.svg and build/example/plan.json"

if [[ -x $executor ]] && $executor run --help >/dev/null 2>&1; then
  config=$(sed -n 's/^ *config: *\([^ #]*\).*/\1/p' "$spec" | head -1)
  checkpoint=$(sed -n 's/^ *checkpoint: *\([^ #]*\).*/\1/p' "$spec" | head -1)
  if [[ -n $checkpoint ]]; then
    dir=$(dirname "$spec")
    echo
    echo "== executor make-checkpoint --config $dir/$config --out $dir/$checkpoint"
    $executor make-checkpoint --config "$dir/$config" --out "$dir/$checkpoint" --seed 0
    echo
    echo "== executor run --spec $spec --device cpu --verify"
    $executor run --spec "$spec" --device cpu --verify
  fi
fi
