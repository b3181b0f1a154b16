#!/bin/sh
# Renders one plan to SVG, opens it in headless Chromium and checks the screenshot shows the
# picture: not blank, with the tensor-mode fill, the data-mode fill and the red of collectives.
# Usage: screenshot_test.sh PLANNER SOURCE_DIR. Exit 77 (ctest: skipped) without chromium.
set -eu
planner=$1
src=$2
. "$src/tests/render/find_chromium.sh"
if ! command -v python3 > /dev/null; then
  echo "SKIPPED: python3 is not installed"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$planner" render "$src/specs/llava-1.5-7b-vision-dp-tp4.yaml" -o "$work/plan.svg"
# --no-sandbox: Chromium refuses to start as root without it (CI containers).
timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
  --user-data-dir="$work/profile" --screenshot="$work/shot.png" --window-size=1400,1800 \
  "file://$work/plan.svg" > "$work/chromium.log" 2>&1 || {
  cat "$work/chromium.log"
  echo "FAILED: chromium did not take the screenshot"
  exit 1
}
# tensor fill, data fill, collective red (plan_dot.cc).
python3 "$src/tests/render/png_check.py" "$work/shot.png" \
  --min-ink 0.03 --colour cfe2f3:20000 --colour d4edcf:5000 --colour c62828:1000
