#!/usr/bin/env bash
# What `make bench` needs beyond the dev venv: Java 17 for the PySpark peer run, and the
# `bench` extra (pyspark, matplotlib). Idempotent; quick when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
bash scripts/install-system-deps.sh openjdk-17-jre-headless
"$VENV/bin/pip" install --quiet -e '.[dev,bench]'
