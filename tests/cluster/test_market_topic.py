"""Market snapshots through cluster mode against real servers: the ingest role publishes them to
`<prefix>.market` keyed `source:asset:vs_currency`, the archive role commits them into
PostgreSQL's `market_snapshots` with its offsets, exactly once across a crash and a restart of
the consumer, and a malformed message is dead-lettered (DLQ topic and `dead_letters`) and
counted while the rest goes on."""

import time
from collections.abc import AsyncIterator, Collection, Mapping
from pathlib import Path

import pytest
from confluent_kafka import Message
from deploy.kafka.broker import KafkaBroker

from marketpipe.bus import serde
from marketpipe.bus.kafka import (
    Offsets,
    OffsetsInStoreConsumer,
    RecordProducer,
    Topics,
    read_dead_letters,
)
from marketpipe.cluster.archive import TradeArchiver
from marketpipe.cluster.ingest import KafkaIngest, ingest_live, ingest_market
from marketpipe.cluster.market_archive import MarketArchiver
from marketpipe.cluster.serving import cluster_serving
from marketpipe.config import load_settings
from marketpipe.model.batch import CommitBatch
from marketpipe.model.records import DeadLetter, MarketSnapshot
from marketpipe.observability.metrics import REGISTRY
from marketpipe.storage.lake import ParquetLake
from marketpipe.storage.memory_sink import MemorySink
from marketpipe.storage.postgres_warm import PostgresWarehouse
from tests.servers.s3 import S3Endpoint

pytestmark = pytest.mark.integration

T0 = 1_723_161_600_000_000
MINUTE = 60_000_000
ASSETS = ("BTC", "ETH", "SOL")


def poll(minute: int) -> list[MarketSnapshot]:
    """One CoinGecko poll: every asset in usd and eur; SOL's market cap unknown."""
    ts = T0 + minute * MINUTE
    return [
        MarketSnapshot("coingecko", asset, vs, 100.0 * (i + 1) + minute,
                       None if asset == "SOL" else 1e9 * (i + 1), None, 5e6, 1e6,
                       None if asset == "SOL" else i + 1, ts, ts + 3)
        for i, asset in enumerate(ASSETS) for vs in ("usd", "eur")
    ]  # fmt: skip


@pytest.fixture
def warm(postgres_dsn: str) -> PostgresWarehouse:
    store = PostgresWarehouse(postgres_dsn)
    store.migrate()
    yield store  # type: ignore[misc]
    store.close()


async def polls(
    minutes: range, *, bad_row: bool = False
) -> AsyncIterator[list[MarketSnapshot | DeadLetter]]:
    for minute in minutes:
        batch: list[MarketSnapshot | DeadLetter] = [*poll(minute)]
        if bad_row:
            batch.append(DeadLetter(T0, "coingecko", "row without current_price", b"{}", "poll"))
        yield batch


def stored(warm: PostgresWarehouse) -> list[MarketSnapshot]:
    return warm.market_snapshots(None, None, None)


def expected(minutes: range) -> list[MarketSnapshot]:
    return sorted((s for mi in minutes for s in poll(mi)),
                  key=lambda s: (s.ts_source, s.source, s.asset, s.vs_currency))  # fmt: skip


async def test_published_snapshots_are_keyed_by_series_and_bad_rows_go_to_the_dlq(
    kafka_broker: KafkaBroker, kafka_topics: Topics
) -> None:
    ingest = KafkaIngest(kafka_broker.bootstrap, kafka_topics)
    totals = await ingest_market(ingest, polls(range(3), bad_row=True))
    assert (totals.snapshots, totals.dead_letters) == (18, 3)
    messages = _consume_all_market(kafka_broker, kafka_topics, 18)
    decoded = [serde.decode_market_snapshot(msg.value()) for msg in messages]
    assert sorted(decoded, key=lambda s: (s.ts_source, s.asset, s.vs_currency)) == sorted(
        expected(range(3)), key=lambda s: (s.ts_source, s.asset, s.vs_currency)
    )
    partitions: dict[bytes, set[int]] = {}
    for msg, snapshot in zip(messages, decoded, strict=True):
        key = f"coingecko:{snapshot.asset}:{snapshot.vs_currency}".encode()
        assert msg.key() == key
        partitions.setdefault(key, set()).add(msg.partition())
    assert len(partitions) == 6 and all(len(p) == 1 for p in partitions.values())
    assert b'"v":1' in messages[0].value()
    dead = read_dead_letters(kafka_broker.bootstrap, kafka_topics)
    assert [d.origin_topic for d in dead] == ["source:coingecko"] * 3


def _consume_all_market(broker: KafkaBroker, topics: Topics, expected_n: int) -> list[Message]:
    consumer = OffsetsInStoreConsumer(broker.bootstrap, "check-market", [topics.market],
                                      lambda _topic, _partitions: {})  # fmt: skip
    messages: list[Message] = []
    deadline = time.monotonic() + 60
    try:
        while len(messages) < expected_n and time.monotonic() < deadline:
            messages.extend(consumer.poll(1000, 0.5).messages)
    finally:
        consumer.close()
    return messages


def dead_letters_counted() -> float:
    return REGISTRY.get_sample_value("dead_letters_total", {"source": "kafka"}) or 0.0


class CrashBeforeCommit:
    """The warehouse, but the process dies (once) just before its first market commit."""

    def __init__(self, warm: PostgresWarehouse) -> None:
        self.warm = warm
        self.crashed = False

    def commit(self, batch: CommitBatch, *, consumer_group: str | None = None,
               offsets: Offsets | None = None,
               fence: Mapping[tuple[str, int], int] | None = None) -> None:  # fmt: skip
        if batch.snapshots and not self.crashed:
            self.crashed = True
            raise KeyboardInterrupt("killed before the commit")
        self.warm.commit(batch, consumer_group=consumer_group, offsets=offsets, fence=fence)

    def claim_partitions(
        self, consumer_group: str, partitions: Collection[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        return self.warm.claim_partitions(consumer_group, partitions)

    def load_offsets(self, consumer_group: str, topic: str) -> dict[int, int]:
        return self.warm.load_offsets(consumer_group, topic)


async def test_snapshots_reach_postgres_exactly_once_across_a_crash_and_a_restart(
    kafka_broker: KafkaBroker, kafka_topics: Topics, warm: PostgresWarehouse
) -> None:
    ingest = KafkaIngest(kafka_broker.bootstrap, kafka_topics)
    await ingest_market(ingest, polls(range(4)))
    crashing = MarketArchiver(CrashBeforeCommit(warm), kafka_broker.bootstrap, kafka_topics)
    with pytest.raises(KeyboardInterrupt):
        crashing.run(until_idle=True, max_seconds=60)
    assert stored(warm) == []  # nothing landed, and no offset moved
    first = MarketArchiver(warm, kafka_broker.bootstrap, kafka_topics)
    first.run(until_idle=True, max_seconds=60)
    assert first.totals.snapshots == 24 and stored(warm) == expected(range(4))
    # More polls, one of them a re-poll of minute 3 (same ts_source): a restarted member
    # reads only what came after the stored offsets, and the re-poll is stored once.
    await ingest_market(ingest, polls(range(3, 6)))
    second = MarketArchiver(warm, kafka_broker.bootstrap, kafka_topics)
    second.run(until_idle=True, max_seconds=60)
    assert second.totals.snapshots == 18  # minutes 3, 4, 5: not the 24 before
    assert stored(warm) == expected(range(6))
    latest = warm.latest_market_snapshots()
    assert {s.ts_source for s in latest} == {T0 + 5 * MINUTE} and len(latest) == 6
    sol = [s for s in latest if s.asset == "SOL"]
    assert all(s.market_cap is None and s.market_cap_rank is None for s in sol)


def test_a_malformed_market_message_is_dead_lettered_and_counted(
    kafka_broker: KafkaBroker, kafka_topics: Topics, warm: PostgresWarehouse
) -> None:
    producer = RecordProducer(kafka_broker.bootstrap, kafka_topics)
    good = poll(0)
    producer.market_snapshots(good[:2])
    key = b"coingecko:BTC:usd"
    bad = serde.encode(good[0]).replace(b'"price":100.0', b'"price":"lots"')
    producer.produce(kafka_topics.market, key, bad)
    producer.produce(kafka_topics.market, key, b"{not json")
    producer.market_snapshots(good[2:])
    producer.flush()
    counted = dead_letters_counted()
    archiver = MarketArchiver(warm, kafka_broker.bootstrap, kafka_topics)
    archiver.run(until_idle=True, max_seconds=60)
    assert archiver.totals.dead_letters == 2 and stored(warm) == expected(range(1))
    assert dead_letters_counted() - counted == 2
    assert warm.counts()["dead_letters"] == 2
    dead = read_dead_letters(kafka_broker.bootstrap, kafka_topics)
    assert sorted(d.value for d in dead) == sorted([bad, b"{not json"])  # unchanged
    assert all(d.origin_topic == kafka_topics.market for d in dead)
    assert all("market snapshot" in d.error for d in dead)


def test_the_archive_role_consumes_the_market_topic_beside_trades(
    kafka_broker: KafkaBroker, kafka_topics: Topics, warm: PostgresWarehouse, tmp_path: Path
) -> None:
    producer = RecordProducer(kafka_broker.bootstrap, kafka_topics)
    producer.market_snapshots(poll(0) + poll(1))
    producer.flush()
    archiver = TradeArchiver(warm, ParquetLake(tmp_path / "lake"), kafka_broker.bootstrap,
                             kafka_topics)  # fmt: skip
    assert archiver.market is not None
    archiver.run(until_idle=True, max_seconds=60)
    assert stored(warm) == expected(range(2))
    assert warm.load_offsets("marketpipe-archive:market", kafka_topics.market)
    # A store without market snapshots gets no market consumer.
    plain = TradeArchiver(NoMarket(), ParquetLake(tmp_path / "lake"), kafka_broker.bootstrap,
                          kafka_topics)  # fmt: skip
    assert plain.market is None
    plain.consumer.close()


class NoMarket(MemorySink):
    stores_market_snapshots = False


async def test_ingest_live_publishes_market_polls_beside_the_venues(
    kafka_broker: KafkaBroker, kafka_topics: Topics
) -> None:
    ingest = KafkaIngest(kafka_broker.bootstrap, kafka_topics)
    totals = await ingest_live(ingest, {}, duration_s=30.0, market=polls(range(2)))
    assert totals.snapshots == 12  # the poller ended, so did the run; all of it delivered
    decoded = [serde.decode_market_snapshot(msg.value())
               for msg in _consume_all_market(kafka_broker, kafka_topics, 12)]  # fmt: skip
    assert sorted(decoded, key=_order) == expected(range(2))


def _order(s: MarketSnapshot) -> tuple[int, str, str, str]:
    return (s.ts_source, s.source, s.asset, s.vs_currency)


def test_cluster_serving_answers_market_from_postgres(
    warm: PostgresWarehouse, redis_url: str, s3_bucket: S3Endpoint, tmp_path: Path
) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        cluster={
            "postgres_dsn": warm.dsn, "redis_url": redis_url,
            "s3_endpoint": s3_bucket.endpoint, "s3_bucket": s3_bucket.bucket,
            "s3_access_key": s3_bucket.access_key, "s3_secret_key": s3_bucket.secret_key,
        },
    )  # fmt: skip
    warm.commit(CommitBatch(snapshots=poll(0) + poll(2) + poll(1)))
    serving = cluster_serving(settings, live=False)
    try:
        assert serving.backend.market is not None
        assert serving.backend.market() == sorted(poll(2), key=lambda s: _order(s)[1:])
    finally:
        serving.close()
