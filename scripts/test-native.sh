#!/usr/bin/env bash
# The Rust extension's own unit tests (native/src/*.rs), run by `make test` before pytest; the
# differential tests in tests/ then hold the native path to the Python one. Same target dir as
# the build (scripts/build-native.sh), so only the test harness compiles anew.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1; then
  echo "native: cargo is not installed; its unit tests do not run (the Python path is tested)" >&2
  exit 0
fi
export CARGO_TARGET_DIR="$PWD/.cache/native-target"
started=$(date +%s.%N)
(cd native && cargo test --release --locked --quiet)
printf 'native: unit tests passed in %.1f s\n' "$(echo "$(date +%s.%N) - $started" | bc)"
