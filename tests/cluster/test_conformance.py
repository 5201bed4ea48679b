"""Native vs Spark conformance (real Kafka, PostgreSQL and Spark): the same trades in Kafka
give identical final candles (every interval) and identical alert sets in PostgreSQL from
`process --engine native` and `--engine spark`, and both equal embedded mode's output,
venue by venue: every input venue is in every engine's output with its own trades only.

Datasets, each of several venues:
- recorded: the two recorded Binance BTCUSDT files (2024) and a real Coinbase ws-feed
  recording (2021: 107 trades of 10 products), ingested after Binance's, and read by Spark
  in several micro-batches, so the older venue arrives after the newer one's clock has moved
  on (each exchange has its own watermark);
- synthetic: a multi-symbol Binance market (6 symbols, spikes and whales) plus Coinbase's
  `BTC-USD` and `ETH-USDT` over the same minutes, its ETH-USDT with Binance's trade ids. CI
  runs 100k trades in all, 10 % on Coinbase (MARKETPIPE_CONFORMANCE_TRADES overrides);
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
    SYNTHETIC_START,
    embedded_results,
    fresh_warehouse,
    results,
    run_native,
    synthetic_trades,
)
from tests.cluster.conformance import (
    by_venue,
    coinbase_trades,
    input_last_trades,
    input_trade_counts,
    last_trades,
    minute_trade_counts,
    raw_coinbase_trades,
    recorded_coinbase_trades,
    run_spark_per_venue,
    venue_differences,
)
from tests.conftest import BINANCE_08, BINANCE_09
from tests.servers.scripts import ScriptServer

pytestmark = pytest.mark.integration

POISON = b'{"v":1,"exchange":"binance","symbol":"BTC-USDT","trade_id":"x"}'
SYNTHETIC_TRADES = int(os.environ.get("MARKETPIPE_CONFORMANCE_TRADES", "100000"))
VENUES = {"recorded": {"binance", "coinbase"}, "synthetic": {"binance", "coinbase"}}
# The recorded set's ~20k trades in a few Spark micro-batches: Coinbase's (older) trades
# come after Binance's have moved the clock on.
RECORDED_OFFSETS_PER_BATCH = 6_000


def _recorded_tables() -> list[pa.Table]:
    binance = [
        chunk.trades for chunk in ReplayReader([BINANCE_08, BINANCE_09]) if chunk.trades.num_rows
    ]
    return [*binance, recorded_coinbase_trades()]


def _synthetic_tables(total: int) -> list[pa.Table]:
    binance = synthetic_trades(total - total // 10)
    return [binance, coinbase_trades(total // 10, SYNTHETIC_START, binance)]


@pytest.mark.parametrize("dataset", ["recorded", "synthetic"])
def test_native_and_spark_give_identical_final_candles_and_alerts_equal_to_embedded(
    dataset: str, spark: SparkSession, kafka_broker: KafkaBroker, kafka_topics: Topics,
    postgres_server: ScriptServer, settings: Settings, tmp_path: Path,
) -> None:  # fmt: skip
    ingest = KafkaIngest(kafka_broker.bootstrap, kafka_topics)
    if dataset == "recorded":
        tables = _recorded_tables()
        ingest_files(ingest, [BINANCE_08, BINANCE_09])
        ingest.producer.produce(kafka_topics.trades, b"binance:BTC-USDT", POISON)
        ingest.trade_table(tables[-1])
        ingest.flush()
    else:
        tables = _synthetic_tables(SYNTHETIC_TRADES)
        for table in tables:
            ingest.trade_table(table)
        ingest.flush()
    assert ingest.totals.trades == sum(t.num_rows for t in tables)
    venues = VENUES[dataset]
    per_symbol = input_trade_counts(tables)
    assert {exchange for exchange, _ in per_symbol} == venues
    poison = 1 if dataset == "recorded" else 0

    with fresh_warehouse(postgres_server) as native_store:
        processor = run_native(settings, native_store, kafka_broker, kafka_topics)
        native_candles, native_alerts = results(native_store)
        native_positions = last_trades(native_store.positions())
    with fresh_warehouse(postgres_server) as spark_store:
        batch = RECORDED_OFFSETS_PER_BATCH if dataset == "recorded" else 1_000_000
        sink = run_spark_per_venue(spark, settings, spark_store, kafka_broker, kafka_topics,
                                   tmp_path / "checkpoint", venues, max_offsets=batch)  # fmt: skip
        spark_candles, spark_alerts = results(spark_store)
        spark_positions = last_trades(spark_store.positions())
    embedded_candles, embedded_alerts = embedded_results(settings, tables)

    assert processor.totals.trades == ingest.totals.trades
    # Poison goes to the DLQ from each engine, with its origin; processing went on.
    dead = read_dead_letters(kafka_broker.bootstrap, kafka_topics)
    assert [d.value for d in dead] == [POISON] * 2 * poison
    assert all(d.origin_topic == kafka_topics.trades and d.error for d in dead)
    assert sink.totals.batches >= (3 if dataset == "recorded" else 1)
    assert native_candles and all(c.is_final for c in native_candles.values())
    assert all(c.is_final for c in spark_candles.values())
    # Venue by venue: each engine has every venue, each venue's candles are equal, and each
    # (exchange, symbol) holds exactly its own input trades (none dropped, none mixed in).
    assert venue_differences(native_candles, spark_candles, venues) == {}
    assert venue_differences(native_candles, embedded_candles, venues) == {}
    for engine in (native_candles, spark_candles, embedded_candles):
        assert minute_trade_counts(engine) == per_symbol
    assert native_positions == spark_positions == input_last_trades(tables)
    alerts = {
        name: {(a.exchange, a.alert_id) for a in found.values()}
        for name, found in (("native", native_alerts), ("spark", spark_alerts),
                            ("embedded", embedded_alerts))
    }  # fmt: skip
    assert alerts["native"] == alerts["spark"] == alerts["embedded"]
    assert {a.kind for a in native_alerts.values()} >= (
        {"whale_trade"} if dataset == "recorded" else {"whale_trade", "price_spike"}
    )
    if dataset == "recorded":  # independently of every engine: SQL over each venue's frames
        spark_venues = by_venue(spark_candles)
        for venue, raw in (("binance", raw_trades([BINANCE_08, BINANCE_09])),
                           ("coinbase", raw_coinbase_trades())):  # fmt: skip
            reference = reference_candles(raw)
            minutes = sorted((k, c) for k, c in spark_venues[venue].items() if k[2] == "1m")
            assert [(c.open, c.high, c.low, c.close, c.trade_count, c.first_trade_id,
                     c.last_trade_id) for _, c in minutes] == [
                (r[2], r[3], r[4], r[5], r[8], r[10], r[11]) for r in reference], venue  # fmt: skip
