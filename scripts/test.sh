#!/usr/bin/env bash
# Sets up whatever is missing (scripts/setup.sh: packages, .venv, build, SmolLM2) and runs the CPU
# tests: unit and property tests, the planner's goldens, the executor's differential tests, the
# comparison with transformers (label `reference`) and SmolLM2 (label `smollm2`). GPU-only tests
# carry the label `gpu` and are left out here (scripts/gpu/ runs them on GPU hosts). Then the
# planner's, the model graphs' and the weights layer's tests and the fuzz replays again under
# AddressSanitizer and UndefinedBehaviorSanitizer (scripts/sanitize.sh --planner-only, its own
# build folder; SHARDPLAN_SANITIZE=0 leaves it out).
#   scripts/test.sh [CTEST ARGS...]      e.g. scripts/test.sh -R reference (then no sanitizer run)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
status=0
ctest --test-dir build -LE gpu --output-on-failure -j2 "$@" || status=$?
if [[ $# -eq 0 && ${SHARDPLAN_SANITIZE:-1} != 0 ]]; then
  echo "test.sh: the planner and weights tests under ASan + UBSan (scripts/sanitize.sh --planner-only)"
  scripts/sanitize.sh --planner-only || status=$?
fi
exit $status
