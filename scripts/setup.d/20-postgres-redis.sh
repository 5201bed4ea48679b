#!/usr/bin/env bash
# PostgreSQL (warm store) and Redis (hot tier) for cluster mode's tests, from apt.
# Started per test session by scripts/servers/{postgres,redis}.sh; no system service is used.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/install-system-deps.sh postgresql redis-server curl
