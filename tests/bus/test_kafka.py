"""The Kafka bus against a real broker: topics, keyed idempotent producing, a consumer whose
offsets live in the caller's store, and the dead-letter topic."""

import time

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource
from deploy.kafka.broker import KafkaBroker

from marketpipe.bus import serde
from marketpipe.bus.kafka import (
    OffsetsInStoreConsumer,
    RecordProducer,
    Topics,
    dead_letter,
    partition_of,
    read_dead_letters,
    replay_dead_letters,
)
from marketpipe.model.records import Trade

pytestmark = pytest.mark.integration


def _trades(n: int) -> list[Trade]:
    symbols = ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
    return [
        Trade("binance", symbols[i % 3], 1000 + i, 100.0 + i, 0.5, "buy" if i % 2 else "sell",
              1_723_075_200_000_000 + i * 1000, 1_723_075_200_000_500 + i * 1000)
        for i in range(n)
    ]  # fmt: skip


def _consume_all(
    broker: KafkaBroker, topics: Topics, group: str, expected: int, store: dict[int, int]
) -> list[object]:
    consumer = OffsetsInStoreConsumer(
        broker.bootstrap, group, [topics.trades], lambda _topic, _parts: dict(store)
    )
    messages = []
    deadline = time.monotonic() + 60
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            polled = consumer.poll(1000, 0.5)
            messages.extend(polled.messages)
            for (_, partition), offset in polled.offsets.items():
                store[partition] = offset
    finally:
        consumer.close()
    return messages


def test_topics_have_configured_partitions_and_candles_are_compacted(
    kafka_broker: KafkaBroker, kafka_topics: Topics
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    metadata = admin.list_topics(timeout=10).topics
    assert len(metadata[kafka_topics.trades].partitions) == 4
    assert len(metadata[kafka_topics.dlq].partitions) == 1
    resource = ConfigResource(ConfigResource.Type.TOPIC, kafka_topics.candles)
    config = admin.describe_configs([resource])[resource].result()
    assert config["cleanup.policy"].value == "compact"


def test_trades_round_trip_keyed_by_symbol_and_resume_from_stored_offsets(
    kafka_broker: KafkaBroker, kafka_topics: Topics
) -> None:
    trades = _trades(300)
    producer = RecordProducer(kafka_broker.bootstrap, kafka_topics)
    producer.trades(trades[:200])
    producer.flush()
    store: dict[int, int] = {}
    first = _consume_all(kafka_broker, kafka_topics, "g1", 200, store)
    producer.trades(trades[200:])
    producer.flush()
    # A new member of the same group resumes at the stored offsets: only the 100 new ones.
    second = _consume_all(kafka_broker, kafka_topics, "g1", 100, store)
    decoded = [serde.decode_trade(m.value()) for m in first + second]  # type: ignore[attr-defined]
    assert sorted((t.symbol, t.trade_id) for t in decoded) == sorted(
        (t.symbol, t.trade_id) for t in trades
    )
    partitions: dict[str, set[int]] = {}
    for message in first + second:
        assert message.key() == f"binance:{serde.decode_trade(message.value()).symbol}".encode()  # type: ignore[attr-defined]
        partitions.setdefault(message.key(), set()).add(message.partition())  # type: ignore[attr-defined]
    assert all(len(p) == 1 for p in partitions.values())  # one symbol, one partition
    # ... the one consumers compute to know which symbols they own
    assert all(p == {partition_of(key, 4)} for key, p in partitions.items())
    assert decoded[0].v == 1


def test_a_member_whose_stored_offsets_are_at_the_end_is_caught_up(
    kafka_broker: KafkaBroker, kafka_topics: Topics
) -> None:
    """A restart after everything was processed gets no message at all; it must still count
    as caught up, or `process --until-idle` never ends (seen after a kill -9 mid-stream)."""
    producer = RecordProducer(kafka_broker.bootstrap, kafka_topics)
    producer.trades(_trades(90))
    producer.flush()
    store: dict[int, int] = {}
    assert len(_consume_all(kafka_broker, kafka_topics, "g-end", 90, store)) == 90
    assert store  # some partitions hold data and are stored at their end
    consumer = OffsetsInStoreConsumer(
        kafka_broker.bootstrap, "g-end", [kafka_topics.trades], lambda _t, _p: dict(store)
    )
    try:
        deadline = time.monotonic() + 60
        while not consumer.assignment and time.monotonic() < deadline:
            assert consumer.poll(100, 0.5).messages == []
        assert consumer.assignment
        assert consumer.caught_up()
    finally:
        consumer.close()


def test_dead_letters_keep_error_and_origin_and_replay_once(
    kafka_broker: KafkaBroker, kafka_topics: Topics
) -> None:
    producer = RecordProducer(kafka_broker.bootstrap, kafka_topics)
    producer.produce(kafka_topics.trades, b"binance:BTC-USDT", b"{not json")
    producer.flush()
    [message] = _consume_all(kafka_broker, kafka_topics, "g2", 1, {})
    dead_letter(producer, message, "not a v1 trade")  # type: ignore[arg-type]
    producer.flush()
    [entry] = read_dead_letters(kafka_broker.bootstrap, kafka_topics)
    assert entry.value == b"{not json"
    assert entry.error == "not a v1 trade"
    assert (entry.origin_topic, entry.origin_offset) == (kafka_topics.trades, 0)
    assert entry.origin_partition == message.partition()  # type: ignore[attr-defined]
    replayed = replay_dead_letters(kafka_broker.bootstrap, kafka_topics)
    assert [e.offset for e in replayed] == [entry.offset]
    assert replay_dead_letters(kafka_broker.bootstrap, kafka_topics) == []  # not twice
    again = _consume_all(kafka_broker, kafka_topics, "g3", 2, {})
    assert [m.value() for m in again] == [b"{not json", b"{not json"]  # type: ignore[attr-defined]


def test_serde_rejects_poison_and_unknown_versions() -> None:
    good = serde.encode(_trades(1)[0])
    assert serde.decode_trade(good).trade_id == 1000
    for bad in [b"", b"[]", b"{not json", good.replace(b'"v":1', b'"v":2'),
                good.replace(b'"side":"sell"', b'"side":"up"'),
                good.replace(b'"price":100.0', b'"price":-1.0'), None]:  # fmt: skip
        with pytest.raises(serde.PoisonMessage):
            serde.decode_trade(bad)


def test_market_snapshot_serde_round_trips_nulls_and_rejects_poison() -> None:
    from marketpipe.model.records import MarketSnapshot

    snapshot = MarketSnapshot("coingecko", "BTC", "usd", 60_000.5, None, 1.3e12, 3e10, 1.97e7,
                              None, 1_723_075_200_123_456, 1_723_075_201_000_000)  # fmt: skip
    good = serde.encode(snapshot)
    assert serde.decode_market_snapshot(good) == snapshot
    assert serde.market_key(snapshot) == b"coingecko:BTC:usd"
    for bad in [b"", b"{not json", good.replace(b'"v":1', b'"v":2'),
                good.replace(b'"price":60000.5', b'"price":-1.0'),
                good.replace(b'"price":60000.5', b'"price":null'),
                good.replace(b'"asset":"BTC"', b'"asset":""'),
                good.replace(b'"market_cap_rank":null', b'"market_cap_rank":0'),
                good.replace(b'"ts_recv"', b'"extra":1,"ts_recv"'), None]:  # fmt: skip
        with pytest.raises(serde.PoisonMessage):
            serde.decode_market_snapshot(bad)
