#!/usr/bin/env bash
# Rewrites the golden DOT files in tests/render/golden/ from the current planner; review the diff
# before committing. Usage: scripts/update-golden-dot.sh [BUILD_DIR] (default: build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
ninja -C "$build" -j2 render_test
cd "$root"
SHARDPLAN_UPDATE_GOLDEN=1 "$build/tests/render/render_test" --gtest_filter='*RenderGolden*'
git -C "$root" status --short tests/render/golden || true
