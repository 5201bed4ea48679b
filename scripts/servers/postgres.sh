#!/usr/bin/env bash
# A throwaway PostgreSQL server for development and tests (binaries from apt `postgresql`).
#
#   postgres.sh start DATA_DIR [PORT]   initdb if needed, start on 127.0.0.1:PORT (default: a
#                                       free port); prints the DSN on stdout
#   postgres.sh stop DATA_DIR           fast shutdown (clean: no recovery on next start)
#   postgres.sh status DATA_DIR         exit 0 if running
#
# The superuser and database are both `marketpipe`, trust auth on 127.0.0.1 only; the socket
# lives in DATA_DIR, so servers never collide on /var/run/postgresql.
# PostgreSQL refuses to run as root: as root, the server runs as the `postgres` system user
# (created by the apt package) and DATA_DIR is chowned to it, so DATA_DIR's parents must be
# traversable by that user (e.g. under /tmp, not under a 0700 home).
# Extra server settings: MARKETPIPE_PG_OPTS="-c fsync=off -c synchronous_commit=off" (tests).
set -euo pipefail

die() { echo "postgres.sh: $*" >&2; exit 1; }

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] \
    || die "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin; run scripts/setup.d/20-cluster-servers.sh (apt postgresql)"
  echo "$dir"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Run a PostgreSQL binary as a non-root user.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

cmd=${1:-}; data=${2:-}
[ -n "$cmd" ] && [ -n "$data" ] || die "usage: postgres.sh start|stop|status DATA_DIR [PORT]"
bin=$(pg_bin)
mkdir -p "$data"
data=$(cd "$data" && pwd)
pgdata="$data/pgdata"

case "$cmd" in
  start)
    if [ -f "$data/port" ] && as_owner "$bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
      echo "postgresql://marketpipe@127.0.0.1:$(cat "$data/port")/marketpipe"  # already running
      exit 0
    fi
    port=${3:-$(free_port)}
    if [ "$(id -u)" -eq 0 ]; then
      id postgres >/dev/null 2>&1 || die "user 'postgres' missing (install apt postgresql)"
      chown postgres: "$data"
      runuser -u postgres -- test -w "$data" \
        || die "user postgres cannot reach $data; use a directory under /tmp"
    fi
    if [ ! -s "$pgdata/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$pgdata" -U marketpipe --auth=trust -E UTF8 --locale=C.UTF-8 \
        --no-sync >"$data/initdb.log" 2>&1 || die "initdb failed, see $data/initdb.log"
    fi
    # shellcheck disable=SC2086  # MARKETPIPE_PG_OPTS is a list of options
    as_owner "$bin/pg_ctl" -D "$pgdata" -l "$data/server.log" -w -t 60 start \
      -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='$data' \
          -c timezone=UTC -c max_connections=200 ${MARKETPIPE_PG_OPTS:-}" >/dev/null \
      || die "server did not start, see $data/server.log"
    echo "$port" >"$data/port"
    if ! as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U marketpipe -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'marketpipe'" | grep -q 1; then
      as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U marketpipe marketpipe
    fi
    echo "postgresql://marketpipe@127.0.0.1:$port/marketpipe"
    ;;
  stop)
    if [ -f "$pgdata/postmaster.pid" ]; then
      as_owner "$bin/pg_ctl" -D "$pgdata" -m fast -w -t 60 stop >/dev/null
    fi
    ;;
  status)
    as_owner "$bin/pg_ctl" -D "$pgdata" status >/dev/null
    ;;
  *) die "unknown command $cmd (start|stop|status)" ;;
esac
