#!/usr/bin/env bash
# Everything the test suite needs beyond the Python venv: runs each scripts/setup.d/*.sh in order.
# Each step installs one concern (apt packages, Maven jars, npm assets, ...) and caches downloads.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
for step in scripts/setup.d/*.sh; do
  echo "setup: $step"
  bash "$step"
done
