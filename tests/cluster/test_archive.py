"""`marketpipe archive` (real Kafka, PostgreSQL and S3 server): trades land in the S3 lake
and trades_recent together; a crash between the two writes, and duplicate deliveries, leave
zero duplicates in either."""

import pyarrow.fs as pafs
import pytest
from deploy.kafka.broker import KafkaBroker

from harness.reference import raw_trades
from marketpipe.bus.kafka import Topics
from marketpipe.cluster.archive import TradeArchiver, open_lake
from marketpipe.cluster.ingest import KafkaIngest, ingest_files
from marketpipe.storage.postgres_warm import PostgresWarehouse
from tests.cluster.cluster import rows_on_disk
from tests.conftest import BINANCE_08, BINANCE_09
from tests.servers.s3 import S3Endpoint

pytestmark = pytest.mark.integration


class Crash(Exception):
    pass


def _lake(s3: S3Endpoint) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        access_key=s3.access_key, secret_key=s3.secret_key,
        endpoint_override=s3.endpoint, region=s3.region,
    )  # fmt: skip


def test_crash_between_lake_and_postgres_and_duplicate_deliveries_leave_no_duplicates(
    kafka_broker: KafkaBroker, kafka_topics: Topics, postgres_dsn: str, s3_bucket: S3Endpoint
) -> None:
    ingest = KafkaIngest(kafka_broker.bootstrap, kafka_topics)
    ingest_files(ingest, [BINANCE_08, BINANCE_09])
    ingest_files(ingest, [BINANCE_09])  # the second file delivered twice
    store = PostgresWarehouse(postgres_dsn)
    store.migrate()
    lake = open_lake(f"{s3_bucket.bucket}/lake", _lake(s3_bucket))
    calls = []

    def crash_once() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise Crash  # after the lake write of the 2nd range, before its PostgreSQL commit

    first = TradeArchiver(store, lake, kafka_broker.bootstrap, kafka_topics,
                          range_messages=3000, before_commit=crash_once)  # fmt: skip
    with pytest.raises(Crash):
        first.run(until_idle=True, max_seconds=120)
    second = TradeArchiver(store, lake, kafka_broker.bootstrap, kafka_topics, range_messages=3000)
    second.run(until_idle=True, max_seconds=120)
    assert second.totals.redone == 1

    expected = sorted(t[1] for t in raw_trades([BINANCE_08, BINANCE_09]))
    in_lake = lake.read_trades()
    lake_ids = sorted(in_lake.column("trade_id").to_pylist())
    assert lake_ids == expected  # every trade once, none twice
    warm = store.trades(exchange=None, symbol=None, start=None, end=None, limit=None)
    assert sorted(t.trade_id for t in warm) == expected
    assert rows_on_disk(lake) == len(expected)  # no trade written twice, even in two files
    store.close()
