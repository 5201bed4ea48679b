"""The archive role's second duty: Kafka `marketpipe.market` -> the warm store's
`market_snapshots` (PostgreSQL or BigQuery), exactly once.

Each poll's snapshots and the consumer group's offsets commit in one PostgreSQL transaction
(offsets in the store, as the processor's), fenced by the partition epochs claimed on every
assignment, so a member that missed a rebalance cannot move them back. A restart re-reads
exactly the uncommitted tail, and `market_snapshots` ignores a snapshot it holds (by source,
asset, vs_currency, ts_source), so a re-polled or re-published one is stored once too.

A message that is not a v1 market snapshot goes to the DLQ topic unchanged (with why and
where), is kept in `dead_letters` in the same transaction, and counted; the rest goes on.
The lake gets snapshots from the warm store, per final day (storage/lifecycle.py).
"""

import logging
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from confluent_kafka import Message

from marketpipe.bus import serde
from marketpipe.bus.kafka import (
    Offsets,
    OffsetsInStoreConsumer,
    RecordProducer,
    Topics,
    dead_letter,
)
from marketpipe.cluster.retry import until_stored
from marketpipe.model.batch import CommitBatch
from marketpipe.model.errors import FencedOut
from marketpipe.model.records import DeadLetter, MarketSnapshot
from marketpipe.observability import metrics as m

log = logging.getLogger(__name__)


class MarketStore(Protocol):
    def commit(
        self, batch: CommitBatch, *, consumer_group: str | None = None,
        offsets: Offsets | None = None, fence: Mapping[tuple[str, int], int] | None = None,
    ) -> None: ...  # fmt: skip
    def claim_partitions(
        self, consumer_group: str, partitions: Collection[tuple[str, int]]
    ) -> dict[tuple[str, int], int]: ...
    def load_offsets(self, consumer_group: str, topic: str) -> dict[int, int]: ...


def stores_market_snapshots(store: object) -> bool:
    """Does this warm store keep market snapshots (PostgreSQL and BigQuery do)?"""
    return bool(getattr(store, "stores_market_snapshots", False))


@dataclass(slots=True)
class MarketTotals:
    commits: int = 0
    snapshots: int = 0  # consumed and committed (a duplicate of a stored one included)
    dead_letters: int = 0
    fenced: int = 0


class MarketArchiver:
    """One consumer-group member of the market topic; `step()` is one poll and commit."""

    def __init__(
        self,
        store: MarketStore,
        bootstrap: str,
        topics: Topics,
        *,
        group: str = "marketpipe-archive:market",
        max_messages: int = 5000,
        consumer_config: dict[str, object] | None = None,
    ) -> None:
        self.store = store
        self.topic = topics.market
        self.group = group
        self.max_messages = max_messages
        self.totals = MarketTotals()
        self.producer = RecordProducer(bootstrap, topics)  # for dead letters
        self._epochs: dict[tuple[str, int], int] = {}
        self._fenced = False
        self._stop = threading.Event()
        self.consumer = OffsetsInStoreConsumer(
            bootstrap, group, [self.topic], self._assigned_offsets, on_assigned=None,
            **(consumer_config or {}),
        )  # fmt: skip

    def _assigned_offsets(self, topic: str, partitions: list[int]) -> dict[int, int]:
        # Claim before reading: a commit of the previous owner landed before, or is refused.
        claim = partial(self.store.claim_partitions, self.group, [(topic, p) for p in partitions])
        self._epochs = until_stored(claim)
        self._fenced = False
        return until_stored(lambda: self.store.load_offsets(self.group, topic))

    def step(self, timeout_s: float = 0.0) -> int:
        """Poll once and commit what came; returns the messages handled."""
        polled = self.consumer.poll(self.max_messages, timeout_s)
        if self._fenced or not polled.messages:
            return 0
        snapshots, dead = self._decode(polled.messages)
        if dead:
            self.producer.flush()  # on the DLQ before their offsets move
        batch = CommitBatch(snapshots=snapshots, dead_letters=dead)
        fence = dict(self._epochs)
        try:
            until_stored(
                lambda: self.store.commit(
                    batch, consumer_group=self.group, offsets=polled.offsets, fence=fence
                )
            )
        except FencedOut as exc:
            self.totals.fenced += 1
            self._fenced = True  # idle until the next assignment claims again
            log.warning(
                "fenced out: another member owns the market partitions now",
                extra={"error": str(exc)[:300], "group": self.group},
            )
            return 0
        self.consumer.commit_to_kafka(polled.offsets)
        self.totals.commits += 1
        self.totals.snapshots += len(snapshots)
        self.totals.dead_letters += len(dead)
        return len(polled.messages)

    def _decode(self, messages: list[Message]) -> tuple[list[MarketSnapshot], list[DeadLetter]]:
        snapshots: list[MarketSnapshot] = []
        dead: list[DeadLetter] = []
        for message in messages:
            try:
                snapshots.append(serde.decode_market_snapshot(message.value()))
            except serde.PoisonMessage as exc:
                error = str(exc)
                dead_letter(self.producer, message, error)
                context = f"{message.topic()}/{message.partition()}/{message.offset()}"
                log.warning("dead-lettered", extra={"error": error, "context": context})
                m.DEAD_LETTERS.labels("kafka").inc()
                raw = message.value() or b""
                dead.append(DeadLetter(time.time_ns() // 1000, "kafka", error, raw, context))
        return snapshots, dead

    def caught_up(self) -> bool:
        return self.consumer.caught_up()

    def stop(self) -> None:
        self._stop.set()

    def run(self, *, until_idle: bool = False, max_seconds: float | None = None) -> None:
        """Consume until stopped (or caught up, with `until_idle`), then close."""
        started = time.monotonic()
        idle_polls = 0
        try:
            while not self._stop.is_set():
                if max_seconds is not None and time.monotonic() - started > max_seconds:
                    break
                handled = self.step(0.5)
                idle_polls = 0 if handled else idle_polls + 1
                if until_idle and idle_polls >= 3 and self.caught_up():
                    break
        finally:
            self.close()

    def close(self) -> None:
        try:
            self.producer.flush()
        finally:
            self.consumer.close()
