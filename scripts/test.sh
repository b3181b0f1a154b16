#!/usr/bin/env bash
# Sets up whatever is missing (scripts/setup.sh: packages, .venv, build, SmolLM2) and runs the CPU
# tests: unit and property tests, the planner's goldens, the executor's differential tests, the
# comparison with transformers (label `reference`) and SmolLM2 (label `smollm2`). GPU-only tests
# carry the label `gpu` and are left out here (scripts/gpu/ runs them on GPU hosts).
#   scripts/test.sh [CTEST ARGS...]      e.g. scripts/test.sh -R reference
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec ctest --test-dir build -LE gpu --output-on-failure -j2 "$@"
