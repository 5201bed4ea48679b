#!/usr/bin/env bash
# Apache Airflow 3 in its own venv at .cache/airflow-venv, for the DAG tests (tests/airflow/).
# Airflow pins hundreds of libraries; keeping it apart leaves the project venv lean. The DAGs
# only call `marketpipe` commands, so this venv never imports marketpipe.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.cache/airflow-venv
SPEC=("apache-airflow>=3.1,<3.4")
STAMP="$VENV/.installed-$(printf '%s\n' "${SPEC[@]}" | sha1sum | cut -c1-12)"
[ -f "$STAMP" ] && exit 0
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "${SPEC[@]}"
"$VENV/bin/airflow" version >/dev/null
touch "$STAMP"
