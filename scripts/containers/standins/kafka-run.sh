#!/usr/bin/env bash
# Like apache/kafka's entry point: every KAFKA_FOO_BAR variable becomes foo.bar (`__` -> `_`,
# `___` -> `-`) in server.properties; the log dir is formatted once with CLUSTER_ID.
set -euo pipefail
props=/opt/kafka/config/server.properties
: >"$props"
while IFS='=' read -r name value; do
  case "$name" in
    KAFKA_HEAP_OPTS|KAFKA_OPTS|KAFKA_JVM_PERFORMANCE_OPTS) continue ;;
    KAFKA_*)
      key=${name#KAFKA_}
      key=$(echo "$key" | tr 'A-Z' 'a-z' | sed -e 's/___/-/g' -e 's/__/@/g' -e 's/_/./g' -e 's/@/_/g')
      echo "$key=$value" >>"$props"
      ;;
  esac
done < <(env)
logdir=$(sed -n 's/^log\.dirs=//p' "$props")
logdir=${logdir:-/tmp/kraft-combined-logs}
cp=(-cp "/opt/kafka/libs/*")
if [ ! -f "$logdir/meta.properties" ]; then
  java -Xmx256m "${cp[@]}" kafka.tools.StorageTool format --ignore-formatted \
    --cluster-id="${CLUSTER_ID:?set CLUSTER_ID}" --config "$props"
fi
# shellcheck disable=SC2086  # option lists
exec java ${KAFKA_HEAP_OPTS:--Xmx512m -Xms128m} -XX:+UseSerialGC -Djava.awt.headless=true \
  ${KAFKA_OPTS:-} "${cp[@]}" kafka.Kafka "$props"
