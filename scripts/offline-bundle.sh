#!/usr/bin/env bash
# An offline bundle of the project's Debian dependencies that a GPU host without a package
# registry lacks (valijson headers; Graphviz's libraries, headers and the dot/core plugins).
#
#   On a connected Debian 12 machine:   scripts/offline-bundle.sh download [DIR]   (default .bundle)
#   Copy DIR to the GPU host, then:      scripts/offline-bundle.sh unpack DIR PREFIX
#   Build there (one line):
#     cmake -S . -B build-gpu -G Ninja -DSHARDPLAN_DEPS_PREFIX=PREFIX -DSHARDPLAN_PNG=OFF \
#       -DSHARDPLAN_BUILD_TESTS=OFF -DSHARDPLAN_BUILD_BENCH=OFF && cmake --build build-gpu
#   (libtorch is found through python3's torch when no system libtorch is installed.)
#
# The bundle also carries the versions of yaml-cpp, spdlog, fmt, CLI11 and nlohmann-json the project
# is built and tested with here, so the build does not depend on what the host happens to have
# and GoogleTest, for the GPU-labelled tests (Google Benchmark is left out: build with
# -DSHARDPLAN_BUILD_BENCH=OFF or use the host's). PNG output needs cairo/pango on the host, so the
# bundle leaves it out (-DSHARDPLAN_PNG=OFF; SVG and DOT work).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(libvalijson-dev libgraphviz-dev libgvc6 libcgraph6 libcdt5 libpathplan4 libxdot4 libltdl7
  libyaml-cpp-dev libyaml-cpp0.7 libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 libcli11-dev
  nlohmann-json3-dev libgtest-dev libgmock-dev)

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
