#!/usr/bin/env bash
# s3proxy from the official image's variables (only those our stack sets).
set -euo pipefail
conf=/tmp/s3proxy.conf
cat >"$conf" <<CONF
s3proxy.endpoint=${S3PROXY_ENDPOINT:-http://0.0.0.0:80}
s3proxy.authorization=${S3PROXY_AUTHORIZATION:-aws-v2-or-v4}
s3proxy.identity=${S3PROXY_IDENTITY:?}
s3proxy.credential=${S3PROXY_CREDENTIAL:?}
jclouds.provider=${JCLOUDS_PROVIDER:-filesystem}
jclouds.filesystem.basedir=${JCLOUDS_FILESYSTEM_BASEDIR:-/data}
jclouds.identity=${JCLOUDS_IDENTITY:-$S3PROXY_IDENTITY}
jclouds.credential=${JCLOUDS_CREDENTIAL:-$S3PROXY_CREDENTIAL}
CONF
exec java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
  -Dlogback.configurationFile=/opt/s3proxy/logback.xml \
  -cp "/opt/s3proxy/lib/*" org.gaul.s3proxy.Main --properties "$conf"
