"""Native vs Spark conformance (real Kafka, PostgreSQL and Spark): the same trades in Kafka
give identical final candles (every interval) and identical alert sets in PostgreSQL from
`process --engine native` and `--engine spark`, and both equal embedded mode's output.

Datasets: the two recorded BTCUSDT files, and a synthetic multi-symbol market (6 symbols,
spikes and whales). CI runs 100k synthetic trades (MARKETPIPE_CONFORMANCE_TRADES overrides);
`make bench` runs the 1M-trade set through both engines.
"""

import os
from pathlib import Path

import pyarrow as pa
import pytest
from deploy.kafka.broker import KafkaBroker
from pyspark.sql import SparkSession

from harness.reference import raw_trades, reference_candles
from marketpipe.bus.kafka import Topics, read_dead_letters
from marketpipe.cluster.ingest import KafkaIngest, ingest_files
from marketpipe.config import Settings
from marketpipe.sources.replay import ReplayReader
from tests.cluster.cluster import (
    embedded_results,
    fresh_warehouse,
    results,
    run_native,
    run_spark_engine,
    synthetic_trades,
)
from tests.cluster.conformance import differences
from tests.conftest import BINANCE_08, BINANCE_09
from tests.servers.scripts import ScriptServer

pytestmark = pytest.mark.integration

POISON = b'{"v":1,"exchange":"binance","symbol":"BTC-USDT","trade_id":"x"}'
SYNTHETIC_TRADES = int(os.environ.get("MARKETPIPE_CONFORMANCE_TRADES", "100000"))


def _recorded_tables() -> list[pa.Table]:
    return [
        chunk.trades for chunk in ReplayReader([BINANCE_08, BINANCE_09]) if chunk.trades.num_rows
    ]


@pytest.mark.parametrize("dataset", ["recorded", "synthetic"])
def test_native_and_spark_give_identical_final_candles_and_alerts_equal_to_embedded(
    dataset: str, spark: SparkSession, kafka_broker: KafkaBroker, kafka_topics: Topics,
    postgres_server: ScriptServer, settings: Settings, tmp_path: Path,
) -> None:  # fmt: skip
    ingest = KafkaIngest(kafka_broker.bootstrap, kafka_topics)
    if dataset == "recorded":
        ingest_files(ingest, [BINANCE_08, BINANCE_09])
        ingest.producer.produce(kafka_topics.trades, b"binance:BTC-USDT", POISON)
        ingest.flush()
        tables = _recorded_tables()
    else:
        tables = [synthetic_trades(SYNTHETIC_TRADES)]
        ingest.trade_table(tables[0])
        ingest.flush()
    assert ingest.totals.trades == sum(t.num_rows for t in tables)
    poison = 1 if dataset == "recorded" else 0

    with fresh_warehouse(postgres_server) as native_store:
        processor = run_native(settings, native_store, kafka_broker, kafka_topics)
        native_candles, native_alerts = results(native_store)
    with fresh_warehouse(postgres_server) as spark_store:
        sink = run_spark_engine(spark, settings, spark_store, kafka_broker, kafka_topics,
                                tmp_path / "checkpoint")  # fmt: skip
        spark_candles, spark_alerts = results(spark_store)
    embedded_candles, embedded_alerts = embedded_results(settings, tables)

    assert processor.totals.trades == ingest.totals.trades
    # Poison goes to the DLQ from each engine, with its origin; processing went on.
    dead = read_dead_letters(kafka_broker.bootstrap, kafka_topics)
    assert [d.value for d in dead] == [POISON] * 2 * poison
    assert all(d.origin_topic == kafka_topics.trades and d.error for d in dead)
    assert sink.totals.batches >= 1
    assert native_candles and all(c.is_final for c in native_candles.values())
    assert all(c.is_final for c in spark_candles.values())
    assert differences(native_candles, spark_candles) == []
    assert differences(native_candles, embedded_candles) == []
    assert set(native_alerts) == set(spark_alerts) == set(embedded_alerts)
    assert {a.kind for a in native_alerts.values()} >= (
        {"whale_trade"} if dataset == "recorded" else {"whale_trade", "price_spike"}
    )
    if dataset == "recorded":  # independently of every engine: SQL over the raw frames
        reference = reference_candles(raw_trades([BINANCE_08, BINANCE_09]))
        minutes = sorted((k, c) for k, c in spark_candles.items() if k[2] == "1m")
        assert [(c.open, c.high, c.low, c.close, c.trade_count, c.first_trade_id,
                 c.last_trade_id) for _, c in minutes] == [
            (r[2], r[3], r[4], r[5], r[8], r[10], r[11]) for r in reference]  # fmt: skip
