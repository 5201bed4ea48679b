#!/usr/bin/env bash
# A throwaway Redis server for development and tests (binary from apt `redis-server`).
#
#   redis.sh start DATA_DIR [PORT]   start on 127.0.0.1:PORT (default: a free port), no
#                                    persistence; prints the URL on stdout
#   redis.sh stop DATA_DIR
#   redis.sh status DATA_DIR         exit 0 if running
set -euo pipefail

die() { echo "redis.sh: $*" >&2; exit 1; }

cmd=${1:-}; data=${2:-}
[ -n "$cmd" ] && [ -n "$data" ] || die "usage: redis.sh start|stop|status DATA_DIR [PORT]"
command -v redis-server >/dev/null \
  || die "redis-server not found; run scripts/setup.d/20-cluster-servers.sh (apt redis-server)"
mkdir -p "$data"
data=$(cd "$data" && pwd)

running() {
  [ -f "$data/port" ] && redis-cli -h 127.0.0.1 -p "$(cat "$data/port")" ping 2>/dev/null | grep -q PONG
}

case "$cmd" in
  start)
    if running; then
      echo "redis://127.0.0.1:$(cat "$data/port")/0"
      exit 0
    fi
    port=${3:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
    redis-server --bind 127.0.0.1 --port "$port" --dir "$data" --daemonize yes \
      --pidfile "$data/redis.pid" --logfile "$data/redis.log" --save '' --appendonly no \
      || die "redis-server failed, see $data/redis.log"
    echo "$port" >"$data/port"
    for _ in $(seq 200); do
      running && { echo "redis://127.0.0.1:$port/0"; exit 0; }
      sleep 0.05
    done
    die "redis did not answer PING within 10 s, see $data/redis.log"
    ;;
  stop)
    if running; then
      redis-cli -h 127.0.0.1 -p "$(cat "$data/port")" shutdown nosave >/dev/null 2>&1 || true
    fi
    ;;
  status) running ;;
  *) die "unknown command $cmd (start|stop|status)" ;;
esac
