#!/usr/bin/env bash
# Build goccy/bigquery-emulator v0.8.1 into .cache/bin (about 6-9 min cold on 2 cores, with a
# ~6 GB compile step; seconds when cached). The version is pinned by tools/bigquery-emulator
# (go.mod with a `tool` directive and a committed go.sum): `go install …@v0.8.1` is refused
# here because the module proxy does not list the module's versions.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.cache/bin/bigquery-emulator
stamp=.cache/bin/.bigquery-emulator-$(cat tools/bigquery-emulator/go.mod tools/bigquery-emulator/go.sum | sha256sum | cut -c1-16)
[ -x "$out" ] && [ -f "$stamp" ] && exit 0
command -v go >/dev/null || { echo "go is needed to build the BigQuery emulator" >&2; exit 1; }
mkdir -p .cache/bin
rm -f .cache/bin/.bigquery-emulator-*
began=$(date +%s)
(cd tools/bigquery-emulator && GOFLAGS=-mod=readonly go build -trimpath -o "../../$out" \
  github.com/goccy/bigquery-emulator/cmd/bigquery-emulator)
touch "$stamp"
echo "bigquery-emulator built in $(( $(date +%s) - began )) s"
