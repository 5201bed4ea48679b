#!/usr/bin/env bash
# The S3-compatible server for cluster mode's tests: s3proxy (filesystem backend) from Maven
# Central, its jars copied into .cache/s3proxy/lib. Java and Maven from apt.
# Why s3proxy and not MinIO: `go install` of MinIO compiles ~1000 packages, far too slow for a
# cold `make test` on 2 cores; s3proxy is a ~45 MB download and nothing to build.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/install-system-deps.sh openjdk-17-jre-headless maven curl
pom=scripts/servers/s3proxy/pom.xml
lib=.cache/s3proxy/lib
stamp=.cache/s3proxy/.installed-$(sha256sum "$pom" | cut -c1-16)
[ -f "$stamp" ] && exit 0
rm -rf "$lib" .cache/s3proxy/.installed-*
bash scripts/mvn-quiet.sh -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
  -DoutputDirectory="$PWD/$lib"
touch "$stamp"
