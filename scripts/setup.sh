#!/usr/bin/env bash
# Installs every dependency (Debian 12, apt) and builds the project into build/. Idempotent: a
# second run installs nothing and rebuilds only what changed.
#   scripts/setup.sh                 # everything (planner + executor)
#   SHARDPLAN_PLANNER_ONLY=1 scripts/setup.sh   # the planner alone, no libtorch
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libyaml-cpp-dev libvalijson-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev
  libgraphviz-dev graphviz libgtest-dev libgmock-dev libbenchmark-dev
  python3 chromium
)
if [[ "${SHARDPLAN_PLANNER_ONLY:-0}" != 1 ]]; then
  packages+=(libtorch-dev libgloo-dev libopenblas0-pthread)
fi

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

executor=ON
[[ "${SHARDPLAN_PLANNER_ONLY:-0}" == 1 ]] && executor=OFF
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
# NOTE: relative paths in ccache's hashes, so clones in other folders (CI) reuse the cache.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHARDPLAN_BUILD_EXECUTOR=$executor
# NOTE: 2 jobs: a libtorch translation unit takes ~1.5 GB and the CI machine has 2 cores.
cmake --build build -j "${SHARDPLAN_JOBS:-2}"
