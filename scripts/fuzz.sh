#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/) with clang, ASan and UBSan in build-fuzz/ and runs
# them one after another, each until N executions or T seconds, whichever comes first; writes
# build-fuzz/fuzz-summary.md (executions, execs/s, corpus, crashes per target).
#   scripts/fuzz.sh [--time SECONDS] [--runs N] [TARGET...]    (targets: spec config safetensors index)
#   scripts/fuzz.sh --time 60 spec                              a minute on the spec front end
# Default: 1,000,000 executions or 900 s per target. Each target starts from its committed seeds
# (tests/fuzz/corpus/<target>/, read only) and the corpus of earlier runs (build-fuzz/corpus/<target>/,
# which gets the new inputs). A crash, a leak, a timeout (> 10 s for one input) or more than
# 2 GB of memory stops that target and leaves its input in build-fuzz/artifacts/<target>/; turn it
# into a regression (tests/fuzz/regressions/<target>/, replayed by ctest -R fuzz_replay) and fix it.
# Exit code 1 when any target found something. One process at a time (the fuzzers do not fork);
# SHARDPLAN_JOBS (default 2) sets the build's parallelism.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

seconds=900
runs=1000000
targets=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --time) seconds=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[[ ${#targets[@]} -gt 0 ]] || targets=(spec config safetensors index)

build=$root/build-fuzz
cxx=$(command -v clang++-14 || command -v clang++ || true)
cc=$(command -v clang-14 || command -v clang || true)
if [[ -z $cxx ]]; then
  echo "fuzz.sh: needs clang++ (apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 2
fi

# NOTE: the libraries get libFuzzer's coverage (fuzzer-no-link); only the targets link its main.
flags="-fsanitize=address,undefined -fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
echo "== configuring $build (clang: $cxx)"
mkdir -p "$build"
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DSHARDPLAN_BUILD_EXECUTOR=OFF -DSHARDPLAN_BUILD_BENCH=OFF -DSHARDPLAN_FUZZ=ON >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log" >&2; exit 2; }
if [[ ! -d $build/tests/fuzz ]]; then
  echo "fuzz.sh: the build has no tests/fuzz: tests/CMakeLists.txt must add_subdirectory(fuzz)" >&2
  exit 2
fi
build_targets=()
for t in "${targets[@]}"; do build_targets+=("${t}_fuzz"); done
echo "== building ${build_targets[*]}"
cmake --build "$build" -j "${SHARDPLAN_JOBS:-2}" --target "${build_targets[@]}"

dict_of() {
  case $1 in
    spec) echo "$root/tests/fuzz/spec.dict" ;;
    config) echo "$root/tests/fuzz/config.dict" ;;
    *) echo "$root/tests/fuzz/weights.dict" ;;
  esac
}

# `stat::NAME: VALUE` of a libFuzzer log (-print_final_stats=1).
stat_of() { sed -n "s/^stat::$2: *//p" "$1" | tail -1; }

summary=$build/fuzz-summary.md
{
  echo "# Fuzzing: $(date -u +%Y-%m-%d) ($(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'))"
  echo
  echo "Each target up to $runs executions or $seconds s, one at a time; clang $("$cxx" -dumpversion), ASan + UBSan."
  echo
  echo "| target | executions | execs/s | seconds | seed inputs | corpus after | new inputs | peak RSS MB | crashes |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$summary"

found=0
for t in "${targets[@]}"; do
  seeds=$root/tests/fuzz/corpus/$t
  corpus=$build/corpus/$t
  artifacts=$build/artifacts/$t
  log=$build/logs/$t.log
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  echo "== $t: up to $runs executions or $seconds s (log: $log)"
  start=$(date +%s)
  set +e
  # NOTE: inputs new to the seeds go to the first folder ($corpus); the seeds stay as committed.
  # -timeout: one input may take 10 s; -rss_limit_mb / -malloc_limit_mb: 2 GB in all, 2 GB at once.
  "$build/tests/fuzz/${t}_fuzz" "$corpus" "$seeds" -runs="$runs" -max_total_time="$seconds" \
    -dict="$(dict_of "$t")" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 -reload=0 2>&1 |
    tee "$log" | grep --line-buffered -E '(INITED|pulse|DONE|ERROR|SUMMARY|Test unit written|deadly signal|out-of-memory|timeout)'
  rc=${PIPESTATUS[0]}
  set -e
  elapsed=$(($(date +%s) - start))
  crashes=$(find "$artifacts" -type f | wc -l)
  [[ $rc -eq 0 && $crashes -eq 0 ]] || found=1
  execs=$(stat_of "$log" number_of_executed_units)
  echo "| $t | ${execs:-?} | $(stat_of "$log" average_exec_per_sec) | $elapsed | $(find "$seeds" -type f | wc -l) |" \
    "$(find "$corpus" -type f | wc -l) | $(stat_of "$log" new_units_added) | $(stat_of "$log" peak_rss_mb) |" \
    "$crashes$([[ $rc -eq 0 ]] || echo " (exit $rc)") |" >>"$summary"
  echo "== $t: exit $rc, ${execs:-?} executions in $elapsed s, $crashes artifacts"
done

if [[ $found -ne 0 ]]; then
  {
    echo
    echo "Findings (build-fuzz/artifacts/):"
    find "$build/artifacts" -type f | sed "s|^$root/|- |"
  } >>"$summary"
fi
echo
cat "$summary"
exit $found
