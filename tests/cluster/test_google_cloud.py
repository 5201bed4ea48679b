"""The seed's topology as one configuration of ours: Kafka -> archive -> BigQuery + GCS, and
Kafka -> native processor -> BigQuery, on real Kafka and the BigQuery and GCS emulators."""

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


class Crash(Exception):
    """The archive dying between its lake write and its warehouse commit."""


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
    calls: list[int] = []

    def crash_once() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise Crash  # after the lake write of the 2nd range, before its BigQuery commit

    first = TradeArchiver(store, lake, kafka_broker.bootstrap, kafka_topics,
                          range_messages=20_000, before_commit=crash_once)  # fmt: skip
    with pytest.raises(Crash):
        first.run(until_idle=True, max_seconds=300)
    second = TradeArchiver(store, lake, kafka_broker.bootstrap, kafka_topics,
                           range_messages=20_000)  # fmt: skip
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
