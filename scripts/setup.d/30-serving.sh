#!/usr/bin/env bash
# Serving tests: Chromium for the dashboard test (driven by Python playwright, never
# `playwright install`), Prometheus to scrape /metrics for real, and the dashboard's npm assets.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/install-system-deps.sh chromium prometheus
bash scripts/install-web-assets.sh
