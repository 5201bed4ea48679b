"""`marketpipe process --engine native`: the embedded CandleEngine as a Kafka consumer group.

Exactly once into PostgreSQL: each micro-batch's candles, alerts, positions and the Kafka
offsets that produced them commit in ONE transaction (`store.commit(..., offsets=...)`). On
every partition assignment the consumer seeks to the offsets stored there and the engine is
rebuilt from the stored positions and open windows of the symbols it then meets, so a crash
(even kill -9) or a rebalance re-reads exactly the uncommitted tail, which dedups by trade id.

Deduplicated trades are written to `trades_recent` in the same transaction (the archive role
writes them too, ignored by key): an open window's restore needs its first and last trades.

Publishing to Redis and to the Kafka candles/alerts topics happens after the commit and is
at-least-once: a crash in between re-publishes on restart (every restored open window and
recent alert is re-published), and readers upsert by key (window, alert_id).

The group scales by partitions: trades are keyed `exchange:symbol`, so each symbol's trades
are read, in order, by exactly one member.

Fencing: on every assignment the member claims its partitions in the store (each epoch + 1)
before it rebuilds, and every commit carries those epochs. A member that missed a rebalance
(e.g. paused past max.poll.interval.ms while its partitions moved on) has stale epochs, so
its late commit is refused (FencedOut): it publishes nothing, drops its engine state and
waits for the fresh assignment its next poll brings, then rebuilds from the store.
"""

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from confluent_kafka import Message

from marketpipe.bus import serde
from marketpipe.bus.kafka import (
    Offsets,
    OffsetsInStoreConsumer,
    RecordProducer,
    Topics,
    dead_letter,
    partition_of,
)
from marketpipe.cluster.retry import best_effort, until_stored
from marketpipe.model.batch import CommitBatch
from marketpipe.model.errors import FencedOut
from marketpipe.model.records import Candle, DeadLetter, Position, Quote
from marketpipe.model.schemas import TRADE_SCHEMA
from marketpipe.observability import metrics as m
from marketpipe.processing.alerts import AlertThresholds
from marketpipe.processing.engine import CandleEngine
from marketpipe.processing.windows import EventTime, EventTimeSettings

log = logging.getLogger(__name__)

SymbolKey = tuple[str, str]


class ProcessorStore(Protocol):
    """What the processor needs from the warm store (PostgresWarehouse provides it)."""

    def commit(
        self, batch: CommitBatch, *, consumer_group: str, offsets: Offsets,
        fence: Mapping[tuple[str, int], int] | None = None,
    ) -> object: ...  # fmt: skip
    def claim_partitions(
        self, consumer_group: str, partitions: Collection[tuple[str, int]]
    ) -> dict[tuple[str, int], int]: ...
    def load_offsets(self, consumer_group: str, topic: str) -> dict[int, int]: ...
    def positions(self) -> list[Position]: ...
    def open_windows(self, min_close_time: int) -> list[tuple[Candle, int, int]]: ...


class HotTier(Protocol):
    def apply(self, batch: CommitBatch) -> None: ...


@dataclass(frozen=True, slots=True)
class EngineConfig(EventTime):
    """The engine's event-time rules (grace, lateness, idle watermark: keywords of
    `EventTime`) plus the alert thresholds and how the consumer polls."""

    rules: AlertThresholds
    batch_max_messages: int = 50_000
    poll_timeout_s: float = 0.5
    # A caught-up member idle this long lets its exchanges' watermarks follow the wall clock
    # (as in a live embedded run), so the last windows go final.
    idle_after_s: float = 2.0

    @classmethod
    def from_sections(
        cls, engine: EventTimeSettings, alerts: AlertThresholds, *, batch_max_messages: int
    ) -> "EngineConfig":
        """From the settings' `engine` and `alerts` sections (and `--batch-max`)."""
        timing = EventTime.from_settings(engine)
        return cls(
            alerts, batch_max_messages=batch_max_messages, grace_us=timing.grace_us,
            allowed_lateness_us=timing.allowed_lateness_us,
            idle_watermark=timing.idle_watermark, idle_lag_us=timing.idle_lag_us,
        )  # fmt: skip


@dataclass(slots=True)
class ProcessorTotals:
    batches: int = 0
    messages: int = 0
    trades: int = 0
    duplicates: int = 0
    candles: int = 0
    alerts: int = 0
    dead_letters: int = 0
    rebalances: int = 0
    hot_skipped: int = 0  # batches the hot tier missed (Redis down); warm has them
    fenced: int = 0  # commits the store refused: another member owned the partitions by then


@dataclass(slots=True)
class _Snapshot:
    """Stored state read at assignment. The symbols of this member's partitions are restored
    at once (a symbol with no new trades must still see its windows finalized); any other
    symbol when first met."""

    positions: dict[SymbolKey, Position] = field(default_factory=dict)
    windows: dict[SymbolKey, list[tuple[Candle, int, int]]] = field(default_factory=dict)
    restored: set[SymbolKey] = field(default_factory=set)


class NativeProcessor:
    def __init__(
        self,
        config: EngineConfig,
        store: ProcessorStore,
        bootstrap: str,
        topics: Topics,
        group: str,
        *,
        hot: HotTier | None = None,
        on_commit: Callable[[CommitBatch, Offsets], None] | None = None,
        consumer_config: dict[str, object] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.topics = topics
        self.group = group
        self.hot = hot
        self.on_commit = on_commit
        self.totals = ProcessorTotals()
        self.producer = RecordProducer(bootstrap, topics)
        self.engine = self._new_engine()
        self._snapshot = _Snapshot()
        self._assigned = False
        self._epochs: dict[tuple[str, int], int] = {}  # claimed at the last assignment
        self._fenced = False  # refused once: idle until the next assignment
        self.consumer = OffsetsInStoreConsumer(
            bootstrap,
            group,
            [topics.trades, topics.quotes],
            lambda topic, _parts: self.store.load_offsets(group, topic),
            on_assigned=self._on_assigned,
            **(consumer_config or {}),
        )
        self._stop = threading.Event()

    # ---- state ---------------------------------------------------------------------------

    def _new_engine(self) -> CandleEngine:
        return CandleEngine.from_timing(self.config, self.config.rules)

    def _on_assigned(self, _partitions: list[tuple[str, int]]) -> None:
        # Called inside poll(): nothing polled earlier is left uncommitted, so rebuilding the
        # engine from the store loses nothing. The previous owner committed before it let go.
        self._assigned = True

    def _rebuild(self) -> None:
        self._assigned = False
        self.totals.rebalances += 1
        # Claim first: a commit of the previous owner either landed before (and is in the
        # state read below) or is refused after.
        assignment = sorted(self.consumer.assignment)
        self._epochs = until_stored(lambda: self.store.claim_partitions(self.group, assignment))
        self._fenced = False
        self.engine = self._new_engine()
        snapshot = _Snapshot()
        positions = until_stored(self.store.positions)
        for p in positions:
            snapshot.positions[(p.exchange, p.symbol)] = p
        horizon = self.engine.recovery_horizon(positions)
        if horizon is not None:
            for window in until_stored(lambda: self.store.open_windows(horizon)):
                candle = window[0]
                snapshot.windows.setdefault((candle.exchange, candle.symbol), []).append(window)
        self._snapshot = snapshot
        self._restore_symbols(self._owned(set(snapshot.positions) | set(snapshot.windows)))

    def _owned(self, symbols: set[SymbolKey]) -> set[SymbolKey]:
        """The symbols whose trades partition is assigned to this member."""
        mine = {p for t, p in self.consumer.assignment if t == self.topics.trades}
        if not mine:
            return set()
        count = self.consumer.partition_count(self.topics.trades)
        return {s for s in symbols if partition_of(serde.symbol_key(*s), count) in mine}

    def _restore_symbols(self, symbols: set[SymbolKey]) -> None:
        snap = self._snapshot
        fresh = symbols - snap.restored
        if not fresh:
            return
        snap.restored |= fresh
        positions = [snap.positions[s] for s in fresh if s in snap.positions]
        windows = [w for s in fresh for w in snap.windows.get(s, [])]
        if positions or windows:
            self.engine.restore(positions, windows)
            # At-least-once publishing: whatever the last owner committed but may not have
            # published yet is published again.
            self._publish(CommitBatch(candles=[w[0] for w in windows]))

    # ---- running -------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def run(self, *, max_seconds: float | None = None, until_idle: bool = False) -> None:
        """Consume until stop() (or `max_seconds`, or — with `until_idle` — until caught up,
        idle and every window final)."""
        started = time.monotonic()
        idle_since: float | None = None
        try:
            while not self._stop.is_set():
                if max_seconds is not None and time.monotonic() - started > max_seconds:
                    break
                polled = self.consumer.poll(
                    self.config.batch_max_messages, self.config.poll_timeout_s
                )
                if self._assigned:
                    self._rebuild()
                if self._fenced:
                    continue  # whatever it read belongs to the new owner now
                if polled.messages:
                    idle_since = None
                    self.process(polled.messages, polled.offsets)
                    continue
                if idle_since is None:
                    idle_since = time.monotonic()
                if time.monotonic() - idle_since >= self.config.idle_after_s:
                    if self.consumer.caught_up():
                        changed = self.advance_idle()
                        if until_idle and not changed:
                            break
                    idle_since = time.monotonic()
        finally:
            self.producer.flush()
            self.consumer.close()

    def process(self, messages: Sequence[Message], offsets: Offsets) -> CommitBatch:
        trades, quotes, dead = self._decode(messages)
        symbols = {(t.exchange, t.symbol) for t in trades}
        self._restore_symbols(symbols)
        batch = self.engine.process(
            serde.trades_table(trades) if trades else TRADE_SCHEMA.empty_table()
        )
        # New trades go into trades_recent too (ignored there if the archive role was first):
        # restoring an open window needs the event times of its first and last trades.
        batch.quotes = quotes
        batch.dead_letters = dead
        if dead:
            self.producer.flush()  # dead letters are on the DLQ before their offsets move
        if not self._commit(batch, offsets):
            return batch
        t = self.totals
        t.messages += len(messages)
        t.trades += len(trades)
        t.duplicates += batch.duplicates
        t.dead_letters += len(dead)
        return batch

    def advance_idle(self) -> bool:
        """Let quiet exchanges' watermarks follow the wall clock; True if a window changed."""
        out = self.engine.advance_idle(time.time_ns() // 1000)
        if out.is_empty:
            return False
        return self._commit(out, {})

    def _commit(self, batch: CommitBatch, offsets: Offsets) -> bool:
        """Commit, then publish; False if the store fenced this member out."""
        if batch.is_empty and not offsets:
            return True
        fence = dict(self._epochs)
        try:
            until_stored(
                lambda: self.store.commit(
                    batch, consumer_group=self.group, offsets=offsets, fence=fence
                )
            )
        except FencedOut as exc:
            self._fence_out(exc)
            return False
        self.totals.batches += 1
        self.totals.candles += len(batch.candles)
        self.totals.alerts += len(batch.alerts)
        m.note_last_trades((p.exchange, p.symbol, p.max_ts_event) for p in batch.positions)
        self._publish(batch)
        self.consumer.commit_to_kafka(offsets)
        if self.on_commit is not None:
            self.on_commit(batch, offsets)
        return True

    def _fence_out(self, exc: FencedOut) -> None:
        """The partitions moved on without this member noticing: its state is stale. Nothing
        is published or committed to Kafka; the next assignment rebuilds from the store."""
        self.totals.fenced += 1
        self.engine = self._new_engine()
        self._snapshot = _Snapshot()
        self._fenced = True  # the epochs stay: any further commit is refused as well
        log.warning(
            "fenced out: another member owns the partitions now; waiting for a new assignment",
            extra={"error": str(exc)[:300], "group": self.group},
        )

    def _publish(self, batch: CommitBatch) -> None:
        hot = self.hot
        if hot is not None and not best_effort(lambda: hot.apply(batch), "hot tier"):
            self.totals.hot_skipped += 1
        self.producer.candles(batch.candles)
        self.producer.alerts(batch.alerts)
        self.producer.poll()

    def _decode(
        self, messages: Sequence[Message]
    ) -> tuple[list[serde.TradeV1], list[Quote], list[DeadLetter]]:
        trade_values: list[bytes] = []
        trade_messages: list[Message] = []
        quotes: list[Quote] = []
        dead: list[DeadLetter] = []
        for message in messages:
            if message.topic() == self.topics.trades:
                value = message.value()
                if value:
                    trade_values.append(value)
                    trade_messages.append(message)
                else:
                    dead.append(self._dead(message, "empty message value"))
            else:
                try:
                    quotes.append(serde.decode_quote(message.value()))
                except serde.PoisonMessage as exc:
                    dead.append(self._dead(message, str(exc)))
        try:
            trades = serde.decode_trades(trade_values)
        except serde.PoisonMessage:
            trades = []
            for message in trade_messages:  # find the bad ones; the rest goes on
                try:
                    trades.append(serde.decode_trade(message.value()))
                except serde.PoisonMessage as exc:
                    dead.append(self._dead(message, str(exc)))
        return trades, quotes, dead

    def _dead(self, message: Message, error: str) -> DeadLetter:
        dead_letter(self.producer, message, error)
        context = f"{message.topic()}/{message.partition()}/{message.offset()}"
        log.warning("dead-lettered", extra={"error": error, "context": context})
        return DeadLetter(
            ts=time.time_ns() // 1000, source="kafka", error=error,
            raw=message.value() or b"", context=context,
        )  # fmt: skip
