#!/usr/bin/env bash
# Everything the test suite needs beyond the Python venv: runs each scripts/setup.d/*.sh in order.
# Each step installs one concern (apt packages, Maven jars, npm assets, ...) and caches downloads.
# The BigQuery emulator's Go build (minutes, CPU-bound) runs beside the steps, which mostly
# wait on downloads, and is waited for at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
mkdir -p .cache
bash scripts/build-bigquery-emulator.sh >.cache/bigquery-emulator-build.log 2>&1 &
emulator=$!
# Each step's wall time is printed: a cold `make test` has a time budget (CONTRIBUTING.md).
for step in scripts/setup.d/*.sh; do
  echo "setup: $step"
  started=$SECONDS
  bash "$step"
  echo "setup: $step took $((SECONDS - started)) s"
done
echo "setup: scripts/build-bigquery-emulator.sh"
started=$SECONDS
if ! wait "$emulator"; then
  cat .cache/bigquery-emulator-build.log >&2
  exit 1
fi
cat .cache/bigquery-emulator-build.log
echo "setup: waited $((SECONDS - started)) s for the emulator build; all steps took $SECONDS s"
