"""The seed's topology as one configuration of ours: Kafka -> archive -> BigQuery + GCS, and
Kafka -> native processor -> BigQuery, on real Kafka and the BigQuery and GCS emulators."""

import signal
import subprocess
import sys

import pytest
from deploy.kafka.broker import KafkaBroker

from harness.reference import raw_trades, reference_candles
from marketpipe.bus.kafka import Topics
from marketpipe.cluster.archive import TradeArchiver
from marketpipe.cluster.ingest import KafkaIngest, ingest_files
from marketpipe.cluster.native import NativeProcessor
from marketpipe.cluster.stores import kafka_route
from marketpipe.config import Settings
from marketpipe.storage.bigquery_client import BigQueryLocation
from marketpipe.storage.bigquery_warm import BigQueryWarehouse
from marketpipe.storage.gcs import GcsLocation, gcs_lake
from tests.cluster.cluster import ALL, engine_config, rows_on_disk
from tests.conftest import BINANCE_08, BINANCE_09
from tests.embedded.test_replay import assert_matches_reference
from tests.servers.gcs import GcsEndpoint

pytestmark = pytest.mark.integration


FAST_REJOIN = {"session.timeout.ms": 6000}  # a killed member's partitions move on quickly

# The archive role in a process of its own, which SIGKILLs itself after the lake write of its
# second range, before that range's BigQuery commit.
KILLED_ARCHIVE = """
import os, signal, sys
from marketpipe.bus.kafka import Topics
from marketpipe.cluster.archive import TradeArchiver
from marketpipe.cluster.stores import kafka_route
from marketpipe.storage.bigquery_client import BigQueryLocation
from marketpipe.storage.bigquery_warm import BigQueryWarehouse
from marketpipe.storage.gcs import GcsLocation, gcs_lake

bootstrap, prefix, endpoint, dataset, gcs, bucket = sys.argv[1:]
topics = Topics(prefix)
location = BigQueryLocation("marketpipe-local", dataset, endpoint=endpoint, timeout_s=60)
store = BigQueryWarehouse(location, route=kafka_route(bootstrap, topics.trades))
lake = gcs_lake(GcsLocation(bucket, "lake", gcs))
calls = []

def kill_on_second_range():
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)

TradeArchiver(store, lake, bootstrap, topics, range_messages=8_000,
              before_commit=kill_on_second_range,
              consumer_config={"session.timeout.ms": 6000}).run(until_idle=True, max_seconds=300)
"""


def test_recorded_files_land_once_in_bigquery_and_gcs_after_a_crash_between_the_writes(
    kafka_broker: KafkaBroker, kafka_topics: Topics, bigquery_location: BigQueryLocation,
    gcs_bucket: GcsEndpoint, settings: Settings,
) -> None:  # fmt: skip
    ingest = KafkaIngest(kafka_broker.bootstrap, kafka_topics)
    ingest_files(ingest, [BINANCE_08, BINANCE_09])
    ingest_files(ingest, [BINANCE_09])  # the second file delivered twice
    route = kafka_route(kafka_broker.bootstrap, kafka_topics.trades)
    store = BigQueryWarehouse(bigquery_location, route=route)
    store.migrate()
    lake = gcs_lake(GcsLocation(gcs_bucket.bucket, "lake", gcs_bucket.endpoint))
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_ARCHIVE, kafka_broker.bootstrap, kafka_topics.prefix,
         bigquery_location.endpoint or "", bigquery_location.dataset, gcs_bucket.endpoint,
         gcs_bucket.bucket],
        capture_output=True, timeout=300,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert lake.read_trades().num_rows > store.counts()["trades_recent"]  # the lake is ahead
    second = TradeArchiver(store, lake, kafka_broker.bootstrap, kafka_topics,
                           range_messages=8_000, consumer_config=FAST_REJOIN)  # fmt: skip
    second.run(until_idle=True, max_seconds=300)
    assert second.totals.redone == 1

    # The candle processor on the same warehouse, raw trades left to the archive.
    candles_store = BigQueryWarehouse(bigquery_location, route=route, writes_trades=False)
    config = engine_config(settings)
    processor = NativeProcessor(
        type(config)(config.rules, idle_after_s=1.0, batch_max_messages=100_000),
        candles_store, kafka_broker.bootstrap, kafka_topics, "native-bq",
    )  # fmt: skip
    processor.run(until_idle=True, max_seconds=300)

    raw = raw_trades([BINANCE_08, BINANCE_09])
    expected = sorted(t[1] for t in raw)
    assert len(expected) == 19_904
    warm = store.trades(**ALL)
    assert sorted(t.trade_id for t in warm) == expected  # each once in BigQuery
    assert sorted(lake.read_trades().column("trade_id").to_pylist()) == expected
    assert rows_on_disk(lake) == 19_904  # and once in the GCS lake's files
    assert_matches_reference(store.candles(interval="1m", **ALL), reference_candles(raw))
    assert processor.totals.duplicates > 0  # the redelivered file was deduplicated
    assert store.load_offsets("native-bq", kafka_topics.trades)  # offsets stored with it
    store.close()
    candles_store.close()
