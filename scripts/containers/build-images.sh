#!/usr/bin/env bash
# build-images.sh IMAGE...: build CI's local images (podman, no registry needed), each from
# the debootstrapped Debian base. Names: marketpipe python prometheus postgres redis kafka s3.
# Layers are cached in podman's storage under .cache/containers, so a warm rerun only redoes
# the layers whose inputs changed. The tags are listed in docs/operations.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/containers/env.sh
bash scripts/containers/base-image.sh >/dev/null
standins=scripts/containers/standins
log="$MARKETPIPE_CONTAINERS/build.log"
build() {  # build TAG CONTAINERFILE CONTEXT [ARGS...]
  local tag=$1 file=$2 ctx=$3; shift 3
  podman build --format docker --layers -t "$tag" -f "$file" "$@" "$ctx" >>"$log" 2>&1 \
    || { echo "building $tag failed; the end of $log:" >&2; tail -30 "$log" >&2; exit 1; }
}
: >"$log"
python=localhost/standin/python:3.11-slim-bookworm
for name in "$@"; do
  case "$name" in
    python) build "$python" "$standins/python.Containerfile" "$standins" ;;
    marketpipe)
      podman image exists "$python" || build "$python" "$standins/python.Containerfile" "$standins"
      wheels=$(bash scripts/containers/wheelhouse.sh "$python")
      build localhost/marketpipe:ci deploy/docker/Dockerfile . \
        --build-context "wheels=$wheels" --build-arg PIP_INDEX_ARGS=--no-index \
        --build-arg "PYTHON_IMAGE=$python" --build-arg NODE_IMAGE=docker.io/library/debian:bookworm
      ;;
    prometheus) build localhost/standin/prometheus:bookworm "$standins/prometheus.Containerfile" "$standins" ;;
    postgres) build localhost/standin/postgres:15 "$standins/postgres.Containerfile" "$standins" ;;
    redis) build localhost/standin/redis:7 "$standins/redis.Containerfile" "$standins" ;;
    kafka)
      bash scripts/setup.d/30-kafka.sh >/dev/null
      version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' deploy/kafka/pom.xml)
      build "localhost/standin/kafka:$version" "$standins/kafka.Containerfile" "$standins" \
        --build-context "kafka-libs=.cache/kafka/libs-$version"
      ;;
    s3)
      bash scripts/setup.d/21-s3-server.sh >/dev/null
      build localhost/standin/s3proxy:ci "$standins/s3proxy.Containerfile" "$standins" \
        --build-context s3proxy-lib=.cache/s3proxy/lib --build-context s3proxy-conf=scripts/servers/s3proxy
      ;;
    *) echo "build-images.sh: unknown image $name" >&2; exit 2 ;;
  esac
done
