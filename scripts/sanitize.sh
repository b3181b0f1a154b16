#!/usr/bin/env bash
# The CPU test suite under AddressSanitizer and UndefinedBehaviorSanitizer (gcc): configures and
# builds build-asan/ with -fsanitize=address,undefined (undefined behaviour fails the test, it is
# not just printed) and runs `ctest -LE gpu` there. Extra arguments go to ctest.
#   scripts/sanitize.sh [--planner-only] [CTEST ARGS...]
#   scripts/sanitize.sh --planner-only          what CI runs: the planner, the model graphs, the
#                                               torch-free weights layer and the fuzz replays,
#                                               without libtorch (build-asan-planner/)
#   scripts/sanitize.sh -R executor_weights     the whole build, one test binary's tests
# libtorch is not instrumented: what ASan reports inside it is suppressed by name only, in
# tests/sanitizers/*.supp (each entry says why); nothing of the project's own code is.
# SHARDPLAN_JOBS (default 2) sets the build's and ctest's parallelism.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

build=$root/build-asan
options=()
if [[ ${1:-} == --planner-only ]]; then
  shift
  # NOTE: its own folder, so that switching modes never reconfigures (and rebuilds) the other.
  build=$root/build-asan-planner
  options+=(-DSHARDPLAN_BUILD_EXECUTOR=OFF)
fi
jobs=${SHARDPLAN_JOBS:-2}

flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# NOTE: -O1: the sanitizers' reports stay readable and the build is faster than -O2.
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DSHARDPLAN_BUILD_BENCH=OFF -DSHARDPLAN_CUDA_KERNELS=OFF "${options[@]}"
cmake --build "$build" -j "$jobs"

# NOTE: the tokenizers' reference tests compare 20,000 strings per style, more than 5 minutes
# each under ASan: here the first 2,000 (every kind of string; the full set runs in the normal CI).
export SHARDPLAN_REFERENCE_STRINGS=${SHARDPLAN_REFERENCE_STRINGS:-2000}
supp=$root/tests/sanitizers
export ASAN_OPTIONS="detect_leaks=1:check_initialization_order=1:strict_init_order=1:suppressions=$supp/asan.supp${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$supp/ubsan.supp${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
exec ctest --test-dir "$build" -LE gpu --output-on-failure -j "$jobs" "$@"
