#!/bin/sh
# Renders plans of every kind (dense tensor-parallel, vision data-parallel, experts, an encoder-
# decoder; both views) to SVG and checks in headless Chromium, with the fonts this machine has,
# that every text lies inside its box (text_fit.py).
# Usage: text_fit_test.sh PLANNER SOURCE_DIR. Exit 77 (ctest: skipped) without chromium.
set -eu
planner=$1
src=$2
. "$src/tests/render/find_chromium.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for spec in examples/tiny-llama-tp2.yaml specs/llava-1.5-7b-vision-dp-tp4.yaml \
  specs/mixtral-8x7b-attn-dp8-ep8.yaml specs/whisper-large-v3-tp2.yaml; do
  name=$(basename "$spec" .yaml)
  "$planner" render "$src/$spec" -o "$work/$name.modules.svg"
  "$planner" render "$src/$spec" --view ranks -o "$work/$name.ranks.svg"
done
python3 "$src/tests/render/text_fit.py" "$chromium" "$work"/*.svg
