#!/usr/bin/env bash
# Kafka broker jars (single-node KRaft for tests and dev) from Maven Central into
# .cache/kafka/libs-<version>; Maven caches the downloads in ~/.m2. Quick when done already.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/install-system-deps.sh openjdk-17-jre-headless maven
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' deploy/kafka/pom.xml)
libs=".cache/kafka/libs-$version"
if [ -f "$libs/.complete" ]; then
  exit 0
fi
rm -rf "$libs"
bash scripts/mvn-quiet.sh -f deploy/kafka/pom.xml dependency:copy-dependencies
touch "$libs/.complete"
echo "kafka $version jars in $libs"
