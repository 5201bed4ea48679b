"""Helpers for cluster-role tests: fresh databases, running each engine to completion, and
reading results back."""

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Consumer, TopicPartition
from deploy.kafka.broker import KafkaBroker
from pyspark.sql import SparkSession

from marketpipe.bus.kafka import Topics
from marketpipe.cluster.native import EngineConfig, NativeProcessor
from marketpipe.cluster.spark_engine import SparkSink, run_spark
from marketpipe.config import Settings
from marketpipe.embedded.pipeline import Pipeline
from marketpipe.embedded.stores import open_store
from marketpipe.model.intervals import INTERVALS
from marketpipe.model.records import Alert, Candle
from marketpipe.simulator import SyntheticMarket
from marketpipe.spark.job import JobConfig, start
from marketpipe.storage.lake import TRADES, ParquetLake
from marketpipe.storage.postgres_warm import PostgresWarehouse
from tests.servers.scripts import ScriptServer

_names = itertools.count()
ALL = {"exchange": None, "symbol": None, "start": None, "end": None, "limit": None}
Key = tuple[str, str, str, int]


@contextmanager
def fresh_warehouse(server: ScriptServer) -> Iterator[PostgresWarehouse]:
    name = f"cluster_{next(_names)}"
    with psycopg.connect(server.url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    store = PostgresWarehouse(f"{server.url.rsplit('/', 1)[0]}/{name}")
    store.migrate()
    try:
        yield store
    finally:
        store.close()
        with psycopg.connect(server.url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(settings.alerts, idle_after_s=1.0)


def run_native(
    settings: Settings, store: PostgresWarehouse, broker: KafkaBroker, topics: Topics,
    group: str = "native",
) -> NativeProcessor:  # fmt: skip
    processor = NativeProcessor(engine_config(settings), store, broker.bootstrap, topics, group)
    processor.run(until_idle=True, max_seconds=600)
    return processor


def end_offsets(broker: KafkaBroker, topic: str) -> "callable[[], dict[int, int]]":  # type: ignore[valid-type]
    probe = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "probe"})
    partitions = list(probe.list_topics(topic, timeout=10).topics[topic].partitions)

    def ends() -> dict[int, int]:
        return {
            p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }

    return ends


def run_spark_engine(
    spark: SparkSession, settings: Settings, store: PostgresWarehouse, broker: KafkaBroker,
    topics: Topics, checkpoint: Path, *, max_offsets: int = 1_000_000,
) -> SparkSink:  # fmt: skip
    sink = SparkSink(engine_config(settings), store, broker.bootstrap, topics, "candles")
    job = JobConfig(
        broker.bootstrap, topics.trades, topics.dlq, str(checkpoint),
        max_offsets_per_trigger=max_offsets,
    )  # fmt: skip
    queries = start(spark, job, sink)
    run_spark(sink, queries, end_offsets=end_offsets(broker, topics.trades), until_idle=True,
              max_seconds=600)  # fmt: skip
    return sink


def results(store: PostgresWarehouse) -> tuple[dict[Key, Candle], dict[str, Alert]]:
    candles = {}
    for interval in INTERVALS:
        for c in store.candles(interval=interval, **ALL):
            candles[(c.exchange, c.symbol, c.interval, c.open_time)] = c
    alerts = {a.alert_id: a for a in store.alerts(**ALL)}
    return candles, alerts


def embedded_results(
    settings: Settings, tables: list[pa.Table]
) -> tuple[dict[Key, Candle], dict[str, Alert]]:
    """Embedded mode (engine + DuckDB store) over the same trades, in order, then flushed."""
    store = open_store(settings)
    try:
        pipeline = Pipeline(settings, store)
        for table in tables:
            for offset in range(0, table.num_rows, 50_000):
                pipeline.ingest(table.slice(offset, 50_000))
        pipeline.flush()
        candles = {}
        for interval in INTERVALS:
            for c in store.warm.candles(interval=interval, **ALL):
                candles[(c.exchange, c.symbol, c.interval, c.open_time)] = c
        alerts = {a.alert_id: a for a in store.warm.alerts(**ALL)}
    finally:
        store.close()
    return candles, alerts


SYNTHETIC_SYMBOLS = ["ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT"]
SYNTHETIC_START = 1_723_248_000_000_000  # 2024-08-10 00:00 UTC


def synthetic_trades(n: int, trades_per_second: float = 200.0, seed: int = 11) -> pa.Table:
    """A multi-symbol synthetic market (spikes, whales, clusters); deterministic per seed.
    At 200 trades/s, 100k trades span about 8 minutes of event time."""
    market = SyntheticMarket(SYNTHETIC_SYMBOLS, trades_per_second, seed, SYNTHETIC_START)
    return market.generate(n).to_arrow()


def rows_on_disk(lake: ParquetLake) -> int:
    """Trade rows in the lake's part files as written, before readers drop duplicate keys:
    the number a duplicate write would inflate."""
    return sum(
        pq.read_metadata(part.path, filesystem=lake.filesystem).num_rows
        for part in lake.parts(TRADES)
    )
