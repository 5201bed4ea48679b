#!/usr/bin/env bash
# Spark for cluster-mode tests: pyspark (the `spark` extra of pyproject.toml) into the venv,
# then spark-sql-kafka-0-10 and its runtime jars at exactly that pyspark version from Maven
# Central into .cache/spark/jars-<version> (cached in ~/.m2). Spark downloads nothing at run time.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/install-system-deps.sh openjdk-17-jre-headless maven
VENV=${VENV:-.venv}
spec=$("$VENV/bin/python" -c '
import tomllib
extras = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]
print(next(d for d in extras["spark"] if d.startswith("pyspark")))')
"$VENV/bin/pip" install -q "$spec"
version=$("$VENV/bin/python" -c 'import pyspark; print(pyspark.__version__)')
jars=".cache/spark/jars-$version"
if [ -f "$jars/.complete" ]; then
  exit 0
fi
rm -rf "$jars"
# -U: re-check Central instead of trusting a cached "not found" from another repository.
bash scripts/mvn-quiet.sh -U -f deploy/spark/pom.xml -Dspark.version="$version" dependency:copy-dependencies
touch "$jars/.complete"
echo "spark-sql-kafka $version jars in $jars"
