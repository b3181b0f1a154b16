# Sourced by the browser tests: sets $chromium, or exits 77 (ctest: skipped) without it.
chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium" ]; then
  echo "SKIPPED: chromium is not installed (apt-get install -y chromium)"
  exit 77
fi
