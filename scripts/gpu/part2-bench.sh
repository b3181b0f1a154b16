#!/usr/bin/env bash
# Part 2 benchmarks on one GPU host: vision-bench.sh on 2 and 4 GPUs (vision tower data vs tensor,
# llava-1.5-7b bf16) and bench/cross_attention_bench on GPU 0 (whisper-large-v3 cross-attention
# per rank at TP 1, 2, 4: split q + fused kv vs full QKV). Results (markdown + SVG) under OUT_DIR:
#   OUT_DIR/vision-bench.{md,svg}   all GPU counts together (per count: OUT_DIR/vision/nN/)
#   OUT_DIR/cross-attention.{md,svg}, cross-attention.json (Google Benchmark's JSON)
#   scripts/gpu/part2-bench.sh [OUT_DIR]
# Knobs: COUNTS="2 4" (vision-bench GPU counts; 8 for the headline host), SKIP_VISION=1,
# SKIP_CROSS=1, SKIP_BUILD=1, WORK=/tmp/shardplan-mm-work, BENCHMARK_DIR=<dir of
# benchmarkConfig.cmake> when Google Benchmark is not where CMake looks by default.
set -uo pipefail
cd "$(dirname "$0")/../.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
out=${1:-${OUT:-/tmp/shardplan-part2}}
work=${WORK:-/tmp/shardplan-mm-work}
mkdir -p "$out" "$work"
out=$(cd "$out" && pwd)
COUNTS=${COUNTS:-2 4}
status=0
nvidia-smi -L

[[ ${SKIP_BUILD:-0} == 1 ]] || scripts/gpu/build.sh "$work" "$out" || exit 2

if [[ ${SKIP_VISION:-0} != 1 ]]; then
  for n in $COUNTS; do
    echo "== vision tower data vs tensor on $n GPUs"
    SKIP_BUILD=1 WORK=$work scripts/gpu/vision-bench.sh "$n" "$out/vision" || status=1
  done
  echo "== vision bench, all GPU counts"
  python3 scripts/gpu/bench_report.py vision "$out/vision-bench" "$out"/vision/n*/vision-*.json >/dev/null || status=1
  echo "$out/vision-bench.md, .svg"
fi

if [[ ${SKIP_CROSS:-0} != 1 ]]; then
  echo "== cross-attention bench (GPU 0)"
  bench_build=$work/build-bench
  extra=()
  [[ -n ${BENCHMARK_DIR:-} ]] && extra+=("-Dbenchmark_DIR=$BENCHMARK_DIR")
  if cmake -S . -B "$bench_build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSHARDPLAN_DEPS_PREFIX="$work/deps" \
       -DSHARDPLAN_PNG=OFF -DSHARDPLAN_BUILD_TESTS=OFF -DSHARDPLAN_BUILD_BENCH=ON "${extra[@]}" \
       >"$out/cmake-bench.log" 2>&1 &&
     cmake --build "$bench_build" -j "$(nproc)" --target cross_attention_bench >"$out/build-bench.log" 2>&1; then
    CUDA_VISIBLE_DEVICES=0 "$bench_build/bench/cross_attention_bench" --device=cuda --size=large-v3 --requests=8 \
      --benchmark_min_time=0.2 --benchmark_out="$out/cross-attention.json" --benchmark_out_format=json \
      | tee "$out/cross-attention.txt" || status=1
    host=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr ' ' '_')
    python3 scripts/gpu/bench_report.py cross "$out/cross-attention" "$host=$out/cross-attention.json" || status=1
  else
    echo "cross_attention_bench not built (see $out/cmake-bench.log, $out/build-bench.log):"
    grep -i -E "benchmark|error" "$out/cmake-bench.log" "$out/build-bench.log" 2>/dev/null | head -5
    echo "Google Benchmark is not in the offline bundle: add libbenchmark-dev and libbenchmark1debian to"
    echo "scripts/offline-bundle.sh's PACKAGES, or set BENCHMARK_DIR to a benchmarkConfig.cmake directory."
    status=1
  fi
fi
echo "part2-bench: $SECONDS s; results in $out"
exit $status
