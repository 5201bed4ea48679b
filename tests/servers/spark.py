"""Spark fixture: one local SparkSession per test session (its start-up is the slow part),
with the Kafka connector jars that scripts/setup.d/31-spark.sh fetched for this pyspark."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers.scripts import STARTUPS

CACHE = Path(__file__).resolve().parents[2] / ".cache" / "spark"


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    # Imported here: every test session loads this plugin, most never need Spark.
    try:
        import pyspark
    except ImportError:
        pytest.fail("pyspark is missing: run `bash scripts/setup.d/31-spark.sh` (make test does)")
    from marketpipe.cluster.spark_engine import spark_jars
    from marketpipe.spark.job import local_session

    started = time.perf_counter()
    jars = spark_jars(CACHE, pyspark.__version__, Path(pyspark.__file__).parent / "jars")
    session = local_session("local[2]", jars)
    session.sparkContext.setLogLevel("ERROR")
    STARTUPS.append(("spark", time.perf_counter() - started))
    yield session
    session.stop()
