#!/usr/bin/env bash
# Builds `executor` and `planner` (Release) on a GPU host from the offline bundle in .bundle
# (scripts/offline-bundle.sh download): the shared first step of the scripts in scripts/gpu/.
#   scripts/gpu/build.sh WORK_DIR LOG_DIR [EXTRA_CMAKE_ARGS...]
# Leaves the build in WORK_DIR/build (executor: WORK_DIR/build/executor/executor); exits 2 with
# the first errors when configuring or building fails.
set -uo pipefail
cd "$(dirname "$0")/../.."
work=${1:?work directory} logs=${2:?log directory}
shift 2
mkdir -p "$work" "$logs"
echo "== build ($(nproc) cores)"
start=$SECONDS
scripts/offline-bundle.sh unpack .bundle "$work/deps" >/dev/null
cmake -S . -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSHARDPLAN_DEPS_PREFIX="$work/deps" \
  -DSHARDPLAN_PNG=OFF -DSHARDPLAN_WITH_REQUESTS=OFF -DSHARDPLAN_BUILD_TESTS=OFF -DSHARDPLAN_BUILD_BENCH=OFF "$@" >"$logs/cmake.log" 2>&1 \
  || { tail -30 "$logs/cmake.log"; exit 2; }
cmake --build "$work/build" -j "$(nproc)" --target executor planner >"$logs/build.log" 2>&1 \
  || { grep -E "error" -A3 "$logs/build.log" | head -40; exit 2; }
echo "build: $((SECONDS - start)) s"
