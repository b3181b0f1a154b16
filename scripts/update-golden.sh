#!/usr/bin/env bash
# Regenerates every golden file (diagnostics, plans, DOT) from the current build; review the diff.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --build build -j "${SHARDPLAN_JOBS:-2}"
SHARDPLAN_UPDATE_GOLDEN=1 ctest --test-dir build -R 'SpecCheck|PlanGolden|SchemaGolden|Golden' -j2 >/dev/null || true
ctest --test-dir build -R 'SpecCheck|PlanGolden|SchemaGolden|Golden' -j2
git status --short -- tests
