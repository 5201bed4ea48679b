"""The Kafka bus of cluster mode (confluent-kafka): topics, an idempotent producer, a batch
consumer whose offsets live with its outputs, and the dead-letter topic.

Topics (DESIGN.md): `<prefix>.trades`, `.quotes` (keyed `exchange:symbol`, so one symbol
stays ordered in one partition), `.candles` (log-compacted, keyed by window), `.alerts`,
`.market` (market snapshots, keyed `source:asset:vs_currency`) and `.dlq`. The prefix is
`marketpipe` unless configured (tests give each run its own).
"""

import logging
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from marketpipe.bus import serde
from marketpipe.model.errors import MarketpipeError
from marketpipe.model.records import Alert, Candle, MarketSnapshot, Quote, Trade

log = logging.getLogger(__name__)

Offsets = dict[tuple[str, int], int]  # (topic, partition) -> next offset to read


# librdkafka's own log lines (reconnects, retries) go through logging, not raw stderr.
_librdkafka_log = logging.getLogger("marketpipe.bus.librdkafka")


class BusError(MarketpipeError):
    """Kafka refused a write, or a topic could not be created."""


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str = "marketpipe"

    @property
    def trades(self) -> str:
        return f"{self.prefix}.trades"

    @property
    def quotes(self) -> str:
        return f"{self.prefix}.quotes"

    @property
    def candles(self) -> str:
        return f"{self.prefix}.candles"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}.alerts"

    @property
    def market(self) -> str:
        return f"{self.prefix}.market"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.dlq"

    def all(self) -> list[str]:
        return [self.trades, self.quotes, self.candles, self.alerts, self.market, self.dlq]


def ensure_topics(
    bootstrap: str, topics: Topics, *, partitions: int, replication: int = 1
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=30).topics)
    wanted = []
    for name in topics.all():
        if name in existing:
            continue
        config = {"compression.type": "producer"}
        if name == topics.candles:
            # The latest value per window is all a reader needs.
            config |= {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"}
        count = 1 if name == topics.dlq else partitions
        wanted.append(NewTopic(name, num_partitions=count, replication_factor=replication,
                               config=config))  # fmt: skip
    if not wanted:
        return []
    for name, future in admin.create_topics(wanted, operation_timeout=30).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BusError(f"cannot create topic {name}: {exc}") from None
    return [t.topic for t in wanted]


# ---- producing ---------------------------------------------------------------------------


def partition_of(key: bytes, partitions: int) -> int:
    """The partition the producer puts `key` in (its "consistent" partitioner)."""
    return zlib.crc32(key) % partitions


def producer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """Idempotent: retries after a broker restart never duplicate or reorder a partition."""
    return {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "compression.type": "lz4",
        # CRC32 of the key (librdkafka's default for keyed messages, made explicit): consumers
        # compute a symbol's partition with `partition_of` to know which symbols they own.
        "partitioner": "consistent",
        "linger.ms": 5,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 500_000,
        "queue.buffering.max.kbytes": 512 * 1024,
        "logger": _librdkafka_log,
        **overrides,
    }


class RecordProducer:
    """Publishes records as versioned JSON. `flush()` raises if anything was not delivered."""

    def __init__(self, bootstrap: str, topics: Topics, **config: Any) -> None:
        self.topics = topics
        self._producer = Producer(producer_config(bootstrap, **config))
        self._failed: list[str] = []
        self.sent = 0

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failed.append(f"{message.topic()}: {error}")

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None:
        while True:
            try:
                self._producer.produce(
                    topic, value, key, headers=list(headers or ()), on_delivery=self._delivered
                )
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                self._producer.poll(0.05)
        self.sent += 1
        if self.sent % 10_000 == 0:
            self._producer.poll(0)

    def trades(self, trades: Iterable[Trade]) -> None:
        for t in trades:
            self.produce(self.topics.trades, serde.symbol_key(t.exchange, t.symbol),
                         serde.encode(t))  # fmt: skip

    def encoded_trades(self, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        for key, value in pairs:
            self.produce(self.topics.trades, key, value)

    def quotes(self, quotes: Iterable[Quote]) -> None:
        for q in quotes:
            self.produce(self.topics.quotes, serde.symbol_key(q.exchange, q.symbol),
                         serde.encode(q))  # fmt: skip

    def candles(self, candles: Iterable[Candle]) -> None:
        for c in candles:
            self.produce(self.topics.candles, serde.candle_key(c), serde.encode(c))

    def alerts(self, alerts: Iterable[Alert]) -> None:
        for a in alerts:
            self.produce(self.topics.alerts, a.alert_id.encode(), serde.encode(a))

    def market_snapshots(self, snapshots: Iterable[MarketSnapshot]) -> None:
        for s in snapshots:
            self.produce(self.topics.market, serde.market_key(s), serde.encode(s))

    def poll(self) -> None:
        self._producer.poll(0)

    def flush(self, timeout_s: float = 120.0) -> None:
        remaining = self._producer.flush(timeout_s)
        failed, self._failed = self._failed, []
        if remaining or failed:
            raise BusError(
                f"{remaining} message(s) undelivered after {timeout_s:.0f}s, "
                f"{len(failed)} failed" + (f": {failed[0]}" if failed else "")
            )


# ---- dead letters ------------------------------------------------------------------------

DLQ_ERROR = "error"
DLQ_TOPIC = "origin.topic"
DLQ_PARTITION = "origin.partition"
DLQ_OFFSET = "origin.offset"
DLQ_AT = "dead.at"


def dead_letter(producer: RecordProducer, message: Message, error: str) -> None:
    """Park a message that cannot be processed on the DLQ topic, unchanged, with why and
    where it came from in the headers."""
    headers = [
        (DLQ_ERROR, error.encode()[:2000]),
        (DLQ_TOPIC, str(message.topic()).encode()),
        (DLQ_PARTITION, str(message.partition()).encode()),
        (DLQ_OFFSET, str(message.offset()).encode()),
        (DLQ_AT, str(time.time_ns() // 1000).encode()),
    ]
    producer.produce(producer.topics.dlq, message.key(), message.value(), headers)


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    offset: int  # in the DLQ topic
    key: bytes | None
    value: bytes | None
    error: str
    origin_topic: str
    origin_partition: int
    origin_offset: int
    dead_at_us: int


def _entry(message: Message) -> DeadLetterEntry:
    headers: dict[str, str] = {}
    raw_headers = message.headers() or []
    pairs = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
    for name, raw in pairs:
        headers[name] = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw or "")
    return DeadLetterEntry(
        offset=int(message.offset() or 0),
        key=message.key(),
        value=message.value(),
        error=headers.get(DLQ_ERROR, ""),
        origin_topic=headers.get(DLQ_TOPIC, ""),
        origin_partition=int(headers.get(DLQ_PARTITION, "-1")),
        origin_offset=int(headers.get(DLQ_OFFSET, "-1")),
        dead_at_us=int(headers.get(DLQ_AT, "0")),
    )


REPLAY_GROUP = "marketpipe-dlq-replay"


def read_dead_letters(
    bootstrap: str, topics: Topics, *, start: int | None = 0, limit: int | None = None
) -> list[DeadLetterEntry]:
    """Dead letters from DLQ offset `start` (None: after the last replayed one), oldest first."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": REPLAY_GROUP, "enable.auto.commit": False}
    )
    try:
        partition = TopicPartition(topics.dlq, 0)
        low, high = consumer.get_watermark_offsets(partition, timeout=30)
        if start is None:
            committed = consumer.committed([partition], timeout=30)[0].offset
            start = committed if committed >= 0 else low
        start = max(start, low)
        consumer.assign([TopicPartition(topics.dlq, 0, start)])
        out: list[DeadLetterEntry] = []
        position = start
        while position < high and (limit is None or len(out) < limit):
            message = consumer.poll(10)
            if message is None:
                raise BusError(f"timed out reading {topics.dlq} at offset {position}")
            if message.error():
                raise BusError(f"reading {topics.dlq}: {message.error()}")
            out.append(_entry(message))
            position = int(message.offset() or 0) + 1
        return out
    finally:
        consumer.close()


def replay_dead_letters(
    bootstrap: str, topics: Topics, *, start: int | None = None, limit: int | None = None
) -> list[DeadLetterEntry]:
    """Send dead letters back to their origin topics, unchanged (after the cause is fixed).

    By default it continues after the last replayed entry, remembered as the committed offset
    of the `marketpipe-dlq-replay` group, so running it twice does not send anything twice.
    Replayed trades are deduplicated by trade id downstream in any case.
    """
    entries = read_dead_letters(bootstrap, topics, start=start, limit=limit)
    if not entries:
        return []
    producer = RecordProducer(bootstrap, topics)
    for entry in entries:
        producer.produce(
            entry.origin_topic, entry.key, entry.value, [("dlq.offset", str(entry.offset).encode())]
        )
    producer.flush()
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": REPLAY_GROUP, "enable.auto.commit": False}
    )
    try:
        consumer.commit(
            offsets=[TopicPartition(topics.dlq, 0, entries[-1].offset + 1)], asynchronous=False
        )
    finally:
        consumer.close()
    return entries


# ---- consuming ---------------------------------------------------------------------------

OffsetLookup = Callable[[str, list[int]], dict[int, int]]  # topic, partitions -> next offsets


@dataclass(slots=True)
class Polled:
    """One consumed batch: the messages and the offsets to store once they are processed."""

    messages: list[Message] = field(default_factory=list)
    offsets: Offsets = field(default_factory=dict)


class OffsetsInStoreConsumer:
    """A consumer-group member whose offsets live in the caller's store, not in Kafka.

    On every assignment it seeks each partition to the offset the store holds (the first
    message not yet reflected in the outputs), so outputs and offsets move together and a
    crash re-reads exactly the uncommitted tail. `on_assigned` lets the caller rebuild its
    state for the new assignment before the first message of it arrives.
    """

    def __init__(
        self,
        bootstrap: str,
        group_id: str,
        topics: list[str],
        stored_offsets: OffsetLookup,
        *,
        on_assigned: Callable[[list[tuple[str, int]]], None] | None = None,
        **config: Any,
    ) -> None:
        self.topics = topics
        self._stored = stored_offsets
        self._on_assigned = on_assigned
        self.assignment: set[tuple[str, int]] = set()
        self._start_offsets: dict[tuple[str, int], int] = {}
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 1500,
                "max.poll.interval.ms": 600_000,
                "fetch.max.bytes": 64 * 1024 * 1024,
                "queued.max.messages.kbytes": 256 * 1024,
                "logger": _librdkafka_log,
                **config,
            }
        )
        self._consumer.subscribe(topics, on_assign=self._assign, on_revoke=self._revoke)

    def _assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        by_topic: dict[str, list[TopicPartition]] = {}
        for tp in partitions:
            by_topic.setdefault(tp.topic, []).append(tp)
        for topic, tps in by_topic.items():
            stored = self._stored(topic, [tp.partition for tp in tps])
            for tp in tps:
                tp.offset = stored.get(tp.partition, OFFSET_BEGINNING)
        consumer.assign(partitions)
        self.assignment = {(tp.topic, tp.partition) for tp in partitions}
        self._start_offsets = {(tp.topic, tp.partition): tp.offset for tp in partitions}
        log.info(
            "partitions assigned",
            extra={"partitions": [f"{p.topic}[{p.partition}]@{p.offset}" for p in partitions]},
        )
        if self._on_assigned is not None:
            self._on_assigned(sorted(self.assignment))

    def partition_count(self, topic: str) -> int:
        metadata = self._consumer.list_topics(topic, timeout=10).topics[topic]
        return len(metadata.partitions)

    def _revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        consumer.unassign()
        self.assignment = set()

    def poll(self, max_messages: int, timeout_s: float) -> Polled:
        """Up to `max_messages` from the current assignment, waiting at most `timeout_s`."""
        out = Polled()
        for message in self._consumer.consume(max_messages, timeout_s):
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error", extra={"error": str(error)})
                continue
            key = (str(message.topic()), int(message.partition() or 0))
            if key not in self.assignment:  # fetched before a revoke: the new owner reads it
                continue
            out.messages.append(message)
            out.offsets[key] = int(message.offset() or 0) + 1
        return out

    def caught_up(self) -> bool:
        """Has this member read everything the broker holds for its assignment?"""
        if not self.assignment:
            return False
        tps = [TopicPartition(t, p) for t, p in self.assignment]
        try:
            positions = self._consumer.position(tps)
            for tp in positions:
                low, high = self._consumer.get_watermark_offsets(tp, timeout=5, cached=False)
                # Before its first message a partition has no position: it starts where it was
                # assigned. One whose stored offset is already at the end never gets a message,
                # so without this it would never count as caught up.
                offset = tp.offset
                if offset < 0:
                    offset = self._start_offsets.get((tp.topic, tp.partition), OFFSET_BEGINNING)
                if offset < 0:  # from the beginning
                    offset = low
                if offset < high:
                    return False
        except KafkaException:
            return False
        return True

    def commit_to_kafka(self, offsets: Offsets) -> None:
        """Advisory copy of the stored offsets (for lag monitoring); never read back."""
        if offsets:
            tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
            try:
                self._consumer.commit(offsets=tps, asynchronous=True)
            except KafkaException as exc:
                log.debug("advisory offset commit failed", extra={"error": str(exc)})

    def close(self) -> None:
        self._consumer.close()


def end_offsets(bootstrap: str, topic: str) -> Callable[[], dict[int, int]]:
    """A probe of `topic`'s current end offset per partition (to tell when a reader caught
    up); it keeps one metadata connection open."""
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": "marketpipe-probe",
                      "logger": _librdkafka_log})  # fmt: skip
    partitions = list(probe.list_topics(topic, timeout=30).topics[topic].partitions)

    def ends() -> dict[int, int]:
        return {
            p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }

    return ends
