#!/usr/bin/env bash
# The GPU-labelled tests (ctest -L gpu: the CUDA kernels against ATen, the NCCL communicator and
# the one-shot all-reduce over peer memory, CUDA-graph decode against eager, the sharded runs on
# cuda:0 against the unsharded and transformers), built on a GPU host from the offline bundle.
#   scripts/gpu/gpu-tests.sh WORK_DIR LOG_DIR
set -uo pipefail
cd "$(dirname "$0")/../.."
work=${1:?work directory} logs=${2:?log directory}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
if [[ -z ${SKIP_BUILD:-} ]]; then
  scripts/gpu/build.sh "$work" "$logs" -DSHARDPLAN_BUILD_TESTS=ON || exit 2
fi
cmake --build "$work/build" -j "$(nproc)" --target executor_kernels_gpu_test executor_runtime_gpu_test executor_comm_gpu_test comm_test_rank >"$logs/gpu-tests-build.log" 2>&1 \
  || { grep -E "error" -A3 "$logs/gpu-tests-build.log" | head -40; exit 2; }
ctest --test-dir "$work/build" -L gpu --output-on-failure
