#!/usr/bin/env bash
# A throwaway S3-compatible server for development and tests: s3proxy with its filesystem
# backend (jars from Maven Central, fetched by scripts/setup.d/21-s3-server.sh).
#
#   s3.sh start DATA_DIR [PORT] [BUCKET...]   start on 127.0.0.1:PORT (default: a free port),
#                                             create the buckets; prints the endpoint URL
#   s3.sh stop DATA_DIR
#   s3.sh status DATA_DIR                     exit 0 if running
#
# Credentials (SigV4, region us-east-1): access key $S3_ACCESS_KEY (default `marketpipe`),
# secret $S3_SECRET_KEY (default `marketpipe-secret`).
set -euo pipefail

die() { echo "s3.sh: $*" >&2; exit 1; }

root=$(cd "$(dirname "$0")/../.." && pwd)
lib="$root/.cache/s3proxy/lib"
access=${S3_ACCESS_KEY:-marketpipe}
secret=${S3_SECRET_KEY:-marketpipe-secret}

cmd=${1:-}; data=${2:-}
[ -n "$cmd" ] && [ -n "$data" ] || die "usage: s3.sh start|stop|status DATA_DIR [PORT] [BUCKET...]"
mkdir -p "$data"
data=$(cd "$data" && pwd)

running() {
  [ -f "$data/port" ] && [ -f "$data/s3proxy.pid" ] && kill -0 "$(cat "$data/s3proxy.pid")" 2>/dev/null \
    && curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$(cat "$data/port")/"
}

empty_sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
create_bucket() {  # PUT /bucket, signed; 409 (already owned) is fine
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X PUT \
    -H "x-amz-content-sha256: $empty_sha256" \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$access:$secret" "$1/$2")
  [ "$code" = 200 ] || [ "$code" = 409 ] || die "creating bucket $2 failed: HTTP $code"
}

case "$cmd" in
  start)
    shift 2
    port=${1:-}; [ $# -gt 0 ] && shift
    if running; then
      endpoint="http://127.0.0.1:$(cat "$data/port")"
    else
      command -v java >/dev/null || die "java not found; run scripts/setup.d/21-s3-server.sh"
      ls "$lib"/s3proxy-*.jar >/dev/null 2>&1 \
        || die "s3proxy jars missing in $lib; run scripts/setup.d/21-s3-server.sh"
      [ -n "$port" ] && [ "$port" != 0 ] \
        || port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
      endpoint="http://127.0.0.1:$port"
      mkdir -p "$data/blobs"
      cat >"$data/s3proxy.conf" <<CONF
s3proxy.endpoint=$endpoint
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=$access
s3proxy.credential=$secret
jclouds.provider=filesystem-nio2
jclouds.filesystem.basedir=$data/blobs
jclouds.identity=$access
jclouds.credential=$secret
CONF
      echo "$port" >"$data/port"
      # Small heap, fast JIT start: it serves tests, not production.
      nohup java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
        -Dlogback.configurationFile="$root/scripts/servers/s3proxy/logback.xml" \
        -cp "$lib/*" org.gaul.s3proxy.Main --properties "$data/s3proxy.conf" \
        >"$data/s3proxy.log" 2>&1 </dev/null &
      echo $! >"$data/s3proxy.pid"
      for _ in $(seq 1200); do
        running && break
        kill -0 "$(cat "$data/s3proxy.pid")" 2>/dev/null || die "s3proxy exited, see $data/s3proxy.log"
        sleep 0.05
      done
      running || die "s3proxy did not answer within 60 s, see $data/s3proxy.log"
    fi
    for bucket in "$@"; do create_bucket "$endpoint" "$bucket"; done
    echo "$endpoint"
    ;;
  stop)
    if [ -f "$data/s3proxy.pid" ]; then
      pid=$(cat "$data/s3proxy.pid")
      if kill "$pid" 2>/dev/null; then
        for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
      fi
      rm -f "$data/s3proxy.pid"
    fi
    ;;
  status) running ;;
  *) die "unknown command $cmd (start|stop|status)" ;;
esac
