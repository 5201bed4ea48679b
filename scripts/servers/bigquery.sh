#!/usr/bin/env bash
# A throwaway BigQuery for development and tests: goccy/bigquery-emulator (MIT, pure Go),
# built into .cache/bin by scripts/build-bigquery-emulator.sh. Data lives in memory.
#
#   bigquery.sh start DATA_DIR [PORT]   start on 127.0.0.1:PORT (default: a free port) with
#                                       the project $BIGQUERY_PROJECT (default
#                                       marketpipe-local); prints the REST endpoint URL
#   bigquery.sh stop DATA_DIR
#   bigquery.sh status DATA_DIR         exit 0 if running
set -euo pipefail

die() { echo "bigquery.sh: $*" >&2; exit 1; }

root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/.cache/bin/bigquery-emulator"
project=${BIGQUERY_PROJECT:-marketpipe-local}

cmd=${1:-}; data=${2:-}
[ -n "$cmd" ] && [ -n "$data" ] || die "usage: bigquery.sh start|stop|status DATA_DIR [PORT]"
mkdir -p "$data"
data=$(cd "$data" && pwd)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
running() {
  [ -f "$data/port" ] && [ -f "$data/bigquery.pid" ] && kill -0 "$(cat "$data/bigquery.pid")" 2>/dev/null \
    && curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$(cat "$data/port")/bigquery/v2/projects/$project/datasets"
}

case "$cmd" in
  start)
    port=${3:-}
    if ! running; then
      [ -x "$bin" ] || die "$bin is missing; run scripts/build-bigquery-emulator.sh (make test does)"
      [ -n "$port" ] && [ "$port" != 0 ] || port=$(free_port)
      grpc=$(free_port)
      echo "$port" >"$data/port"
      nohup "$bin" --project="$project" --host=127.0.0.1 --port="$port" --grpc-port="$grpc" \
        --log-level=warn >"$data/bigquery.log" 2>&1 </dev/null &
      echo $! >"$data/bigquery.pid"
      for _ in $(seq 600); do
        running && break
        kill -0 "$(cat "$data/bigquery.pid")" 2>/dev/null || die "the emulator exited, see $data/bigquery.log"
        sleep 0.05
      done
      running || die "the emulator did not answer within 30 s, see $data/bigquery.log"
    fi
    echo "http://127.0.0.1:$(cat "$data/port")"
    ;;
  stop)
    if [ -f "$data/bigquery.pid" ]; then
      pid=$(cat "$data/bigquery.pid")
      if kill "$pid" 2>/dev/null; then
        for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
      fi
      rm -f "$data/bigquery.pid"
    fi
    ;;
  status) running ;;
  *) die "unknown command $cmd (start|stop|status)" ;;
esac
