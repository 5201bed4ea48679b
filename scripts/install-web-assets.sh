#!/usr/bin/env bash
# The dashboard's npm dependencies (lightweight-charts) into web/node_modules, from the lockfile.
# Installs Node.js + npm from Debian if missing. Quick when already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v npm >/dev/null 2>&1; then
  bash scripts/install-system-deps.sh nodejs npm
fi
if [ -f web/node_modules/.package-lock.json ] && [ web/node_modules/.package-lock.json -nt web/package-lock.json ]; then
  exit 0
fi
npm ci --prefix web --no-audit --no-fund --loglevel=error
