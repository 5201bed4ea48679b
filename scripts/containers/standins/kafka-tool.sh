#!/usr/bin/env bash
# kafka-broker-api-versions.sh as in the Kafka distribution (health checks).
exec java -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "/opt/kafka/libs/*" \
  kafka.admin.BrokerApiVersionsCommand "$@"
