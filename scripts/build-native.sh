#!/usr/bin/env bash
# The Rust extension (native/, PyO3 + maturin) built and installed into the venv, for the
# compiled hot path (docs/native.md). Cargo's target dir is cached in .cache/native-target, so
# a rebuild after a fresh venv or a small change takes seconds. Without cargo the extension is
# left out and marketpipe runs on its Python path (it says so once in its log); with cargo, a
# failing build fails the install, because it is a bug to fix, not a machine to work around.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
if ! command -v cargo >/dev/null 2>&1; then
  echo "native: cargo is not installed; marketpipe will run on its Python path" >&2
  exit 0
fi
export CARGO_TARGET_DIR="$PWD/.cache/native-target"
mkdir -p .cache/native-wheels
rm -f .cache/native-wheels/marketpipe_native-*.whl
started=$(date +%s.%N)
# --locked: exactly the crate versions of native/Cargo.lock.
"$VENV/bin/maturin" build --release --locked --quiet -m native/Cargo.toml \
  -i "$VENV/bin/python" -o .cache/native-wheels
"$VENV/bin/pip" install --quiet --no-deps --force-reinstall .cache/native-wheels/marketpipe_native-*.whl
"$VENV/bin/python" -c "import marketpipe_native" # fails the install if it cannot be loaded
printf 'native: marketpipe_native built and installed in %.1f s\n' \
  "$(echo "$(date +%s.%N) - $started" | bc)"
