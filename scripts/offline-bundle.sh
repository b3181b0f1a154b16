#!/usr/bin/env bash
# An offline bundle of the project's Debian dependencies that a GPU host without a package
# registry lacks (valijson headers; Graphviz's libraries, headers and the dot/core plugins).
#
#   On a connected Debian 12 machine:   scripts/offline-bundle.sh download [DIR]   (default .bundle)
#   Copy DIR to the GPU host, then:      scripts/offline-bundle.sh unpack DIR PREFIX
#   Build there (one line):
#     cmake -S . -B build-gpu -G Ninja -DSHARDPLAN_DEPS_PREFIX=PREFIX -DSHARDPLAN_PNG=OFF \
#       -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')" \
#       && cmake --build build-gpu
#
# yaml-cpp, spdlog, fmt, CLI11, nlohmann-json, GoogleTest and Google Benchmark are expected on the
# host (they are on the project's GPU image); add them to PACKAGES for a barer host. PNG output
# needs cairo/pango on the host, so the bundle leaves it out (-DSHARDPLAN_PNG=OFF; SVG and DOT work).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(libvalijson-dev libgraphviz-dev libgvc6 libcgraph6 libcdt5 libpathplan4 libxdot4 libltdl7)

case "${1:-}" in
  download)
    dir="${2:-.bundle}"
    mkdir -p "$dir"
    (cd "$dir" && apt-get download "${PACKAGES[@]}")
    ls -l "$dir"
    ;;
  unpack)
    dir="${2:?bundle directory}"
    prefix="${3:?install prefix}"
    mkdir -p "$prefix"
    for deb in "$dir"/*.deb; do dpkg-deb -x "$deb" "$prefix"; done
    # Debian's -dev symlinks are absolute-free already; the plugins sit in lib/.../graphviz.
    echo "unpacked ${#PACKAGES[@]} packages into $prefix"
    ;;
  *)
    sed -n '2,16p' "$0"
    exit 2
    ;;
esac
