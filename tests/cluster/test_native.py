"""The native engine as a Kafka consumer group (real broker): same candles and alerts as
embedded mode, poison messages dead-lettered without stopping, and exactly-once restarts."""

import socket
from pathlib import Path

import pytest
from deploy.kafka.broker import KafkaBroker

from harness.reference import raw_trades, reference_candles
from marketpipe.bus.kafka import RecordProducer, Topics, read_dead_letters, replay_dead_letters
from marketpipe.cluster.ingest import KafkaIngest, ingest_files
from marketpipe.cluster.native import EngineConfig, NativeProcessor
from marketpipe.config import Settings
from marketpipe.embedded.replay import replay
from marketpipe.embedded.stores import open_store
from marketpipe.model.intervals import INTERVALS
from marketpipe.storage.memory_sink import MemorySink
from marketpipe.storage.redis_hot import RedisHotTier
from tests.cluster.conformance import differences

pytestmark = pytest.mark.integration


def _processor(
    settings: Settings,
    store: MemorySink,
    broker: KafkaBroker,
    topics: Topics,
    hot: RedisHotTier | None = None,
    **kw: object,
) -> NativeProcessor:
    config = EngineConfig(settings.alerts, idle_after_s=0.5, **kw)  # type: ignore[arg-type]
    return NativeProcessor(config, store, broker.bootstrap, topics, "native", hot=hot)


def _embedded(settings: Settings, files: list[Path]) -> tuple[dict, dict]:  # type: ignore[type-arg]
    replay(settings, files)
    store = open_store(settings)
    try:
        candles = {}
        for interval in INTERVALS:
            for c in store.warm.candles(exchange=None, symbol=None, interval=interval,
                                        start=None, end=None, limit=None):  # fmt: skip
                candles[(c.exchange, c.symbol, c.interval, c.open_time)] = c
        alerts = {a.alert_id: a for a in store.warm.alerts(
            exchange=None, symbol=None, start=None, end=None, limit=None)}  # fmt: skip
    finally:
        store.close()
    return candles, alerts


def test_recorded_files_through_kafka_equal_embedded_and_sql_reference(
    kafka_broker: KafkaBroker, kafka_topics: Topics, recorded_files: list[Path], settings: Settings
) -> None:
    totals = ingest_files(KafkaIngest(kafka_broker.bootstrap, kafka_topics), recorded_files)
    assert totals.trades > 0
    store = MemorySink()
    processor = _processor(settings, store, kafka_broker, kafka_topics)
    processor.run(until_idle=True, max_seconds=240)
    embedded_candles, embedded_alerts = _embedded(settings, recorded_files)
    ours = store.candle_map
    assert differences(ours, embedded_candles) == []
    assert all(c.is_final for c in ours.values())
    assert set(store.alerts) == set(embedded_alerts)
    # Independently: 1m OHLCV and first/last ids equal plain SQL over the raw frames.
    reference = reference_candles(raw_trades(recorded_files))
    minutes = sorted((k, c) for k, c in store.candle_map.items() if k[2] == "1m")
    assert [(c.open, c.high, c.low, c.close, c.trade_count, c.first_trade_id, c.last_trade_id)
            for _, c in minutes] == [(r[2], r[3], r[4], r[5], r[8], r[10], r[11])
                                     for r in reference]  # fmt: skip
    assert store.offsets  # offsets moved with the outputs


def test_a_restart_with_nothing_new_to_read_still_finalizes_the_open_windows(
    kafka_broker: KafkaBroker, kafka_topics: Topics, recorded_files: list[Path], settings: Settings
) -> None:
    """The first member stops with the last windows open (no idle watermark); the next one has
    no message to read for that symbol, yet must restore its windows and finalize them."""
    ingest_files(KafkaIngest(kafka_broker.bootstrap, kafka_topics), recorded_files)
    store = MemorySink()
    first = _processor(settings, store, kafka_broker, kafka_topics, idle_watermark=False)
    first.run(until_idle=True, max_seconds=120)  # stops once caught up
    assert store.offsets and not all(c.is_final for c in store.candle_map.values())
    second = _processor(settings, store, kafka_broker, kafka_topics)
    second.run(until_idle=True, max_seconds=120)
    assert second.totals.messages == 0
    minutes = [c for k, c in sorted(store.candle_map.items()) if k[2] == "1m"]
    assert all(c.is_final for c in store.candle_map.values())
    assert [(c.open, c.close, c.trade_count) for c in minutes] == [
        (r[2], r[5], r[8]) for r in reference_candles(raw_trades(recorded_files))
    ]


def test_a_dead_redis_does_not_stop_processing(
    kafka_broker: KafkaBroker, kafka_topics: Topics, recorded_files: list[Path], settings: Settings
) -> None:
    """The hot tier is written after the warm commit: with Redis down every batch still
    commits (candles as the SQL reference), and the batches Redis missed are counted."""
    ingest_files(KafkaIngest(kafka_broker.bootstrap, kafka_topics), recorded_files)
    with socket.socket() as probe:  # a port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    hot = RedisHotTier(f"redis://127.0.0.1:{dead_port}/0")
    store = MemorySink()
    processor = _processor(settings, store, kafka_broker, kafka_topics, hot=hot)
    processor.run(until_idle=True, max_seconds=240)
    minutes = [c for k, c in sorted(store.candle_map.items()) if k[2] == "1m"]
    reference = reference_candles(raw_trades(recorded_files))
    assert [(c.open, c.close, c.trade_count) for c in minutes] == [
        (r[2], r[5], r[8]) for r in reference
    ]
    assert processor.totals.batches > 0
    assert processor.totals.hot_skipped == processor.totals.batches


def test_poison_message_goes_to_dlq_and_processing_continues_then_replays(
    kafka_broker: KafkaBroker, kafka_topics: Topics, settings: Settings
) -> None:
    producer = RecordProducer(kafka_broker.bootstrap, kafka_topics)
    good = b'{"v":1,"exchange":"binance","symbol":"BTC-USDT","trade_id":%d,"price":60000.0,' \
           b'"qty":0.01,"side":"buy","ts_event":%d,"ts_recv":%d}'  # fmt: skip
    t0 = 1_723_075_200_000_000
    producer.produce(kafka_topics.trades, b"binance:BTC-USDT", good % (1, t0, t0))
    poison = good.replace(b'"side":"buy"', b'"side":"sideways"') % (2, t0 + 1000, t0 + 1000)
    producer.produce(kafka_topics.trades, b"binance:BTC-USDT", poison)
    producer.produce(kafka_topics.trades, b"binance:BTC-USDT", good % (3, t0 + 2000, t0 + 2000))
    producer.flush()
    store = MemorySink()
    first = _processor(settings, store, kafka_broker, kafka_topics)
    first.run(until_idle=True, max_seconds=120)
    [entry] = read_dead_letters(kafka_broker.bootstrap, kafka_topics)
    assert entry.value == poison and "side" in entry.error
    assert entry.origin_topic == kafka_topics.trades
    minute = store.candle_map[("binance", "BTC-USDT", "1m", t0)]
    assert (minute.trade_count, minute.first_trade_id, minute.last_trade_id) == (2, 1, 3)
    assert len(store.dead_letters) == 1
    # The cause is fixed (here: the consumer learns nothing new, the message is repaired by
    # an operator re-publishing it); `dlq replay` sends the original back, which is poison
    # again, so it is dead-lettered again rather than lost.
    replay_dead_letters(kafka_broker.bootstrap, kafka_topics)
    second = _processor(settings, store, kafka_broker, kafka_topics)
    second.run(until_idle=True, max_seconds=120)
    assert len(read_dead_letters(kafka_broker.bootstrap, kafka_topics)) == 2
    assert store.candle_map[("binance", "BTC-USDT", "1m", t0)].trade_count == 2
