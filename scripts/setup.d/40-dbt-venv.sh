#!/usr/bin/env bash
# dbt (core + DuckDB, PostgreSQL and BigQuery adapters) in its own venv at .cache/dbt-venv.
# Own venv because dbt-core pins libraries (pathspec<0.13, protobuf, ...) that clash with the
# project's dev tools; marketpipe runs dbt as a subprocess anyway (`marketpipe dbt ...`).
# dbt-core < 1.12: newer releases fetch a binary at build time, which CI cannot do.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.cache/dbt-venv
SPEC=(
  "dbt-core>=1.10,<1.12"
  "dbt-duckdb>=1.10,<1.12"
  "dbt-postgres>=1.10,<1.12"
  # also brings google-cloud-bigquery, which tests/dbt/test_dbt_bigquery.py uses from this venv
  "dbt-bigquery>=1.10,<1.12"
)
STAMP="$VENV/.installed-$(printf '%s\n' "${SPEC[@]}" | sha1sum | cut -c1-12)"
[ -f "$STAMP" ] && exit 0
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "${SPEC[@]}"
"$VENV/bin/dbt" --version >/dev/null
touch "$STAMP"
