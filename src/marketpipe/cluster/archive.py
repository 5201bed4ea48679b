"""`marketpipe archive`: Kafka trades -> the Parquet lake (S3 or local) + PostgreSQL
`trades_recent`, as one outcome: both land, or the offsets do not move.

A dual write cannot be one transaction, so it is made repeatable instead. Work is cut per
Kafka partition into offset ranges, and each range goes through three steps:

1. plan: the range's end offset is stored in PostgreSQL (consumer group `<group>:plan`);
2. lake: its trades are written as Parquet, atomically, under deterministic names
   (`part-{first_id}-{last_id}` per exchange/symbol/date, from the range's content);
3. commit: its trades go into `trades_recent` together with the group's offsets, in one
   transaction.

After a crash at any point, the member that gets the partition finds the plan ahead of the
committed offset and redoes exactly that range: the same trades, so the same file names with
the same content (a rewrite, not a duplicate), then the commit.

Duplicate deliveries (the same trade at two offsets, e.g. after an ingest restart) are kept
out of the lake by an id ledger per exchange/symbol/date, loaded from the lake's own files on
first use; `trades_recent` ignores them by its key (the native processor writes there too,
which makes its restored windows exact).

Market snapshots (`marketpipe.market`) are archived by the same role: a `MarketArchiver`
(market_archive.py) of its own consumer group `<group>:market`, stepped in the same loop,
commits them into the warm store's `market_snapshots` with its offsets, exactly once.

Fencing: on every assignment the member claims its partitions for both groups (`<group>` and
`<group>:plan`) before it reads the stored offsets, and both commits carry those epochs, so a
member that missed a rebalance cannot move the offsets (or a plan) back under the new owner.
Refused (FencedOut), it drops what it holds and waits for its next assignment.
"""

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
from confluent_kafka import Message

from marketpipe.bus import serde
from marketpipe.bus.kafka import Offsets, OffsetsInStoreConsumer, Topics
from marketpipe.cluster.market_archive import MarketArchiver, stores_market_snapshots
from marketpipe.cluster.retry import until_stored
from marketpipe.model.batch import CommitBatch
from marketpipe.model.errors import FencedOut
from marketpipe.processing.ledger import IdLedger
from marketpipe.storage.lake import ParquetLake

log = logging.getLogger(__name__)


class ArchiveStore(Protocol):
    def commit(
        self, batch: CommitBatch, *, consumer_group: str | None = None,
        offsets: Offsets | None = None, fence: Mapping[tuple[str, int], int] | None = None,
    ) -> None: ...  # fmt: skip
    def claim_partitions(
        self, consumer_group: str, partitions: Collection[tuple[str, int]]
    ) -> dict[tuple[str, int], int]: ...
    def load_offsets(self, consumer_group: str, topic: str) -> dict[int, int]: ...


def open_lake(root: str, filesystem: pafs.FileSystem | None = None) -> ParquetLake:
    """A lake at a local path, or `s3://bucket/prefix` (S3 settings from the environment:
    AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION)."""
    if filesystem is None and root.startswith("s3://"):
        filesystem, path = pafs.FileSystem.from_uri(root)
        return ParquetLake(path, filesystem)
    return ParquetLake(root, filesystem)


@dataclass(slots=True)
class ArchiveTotals:
    ranges: int = 0
    trades: int = 0
    duplicates: int = 0
    skipped: int = 0  # undecodable (the processor dead-letters them)
    redone: int = 0
    fenced: int = 0  # commits refused: another member owned the partition by then


@dataclass(slots=True)
class _Pending:
    messages: list[Message] = field(default_factory=list)
    first_seen: float = field(default_factory=time.monotonic)


class TradeArchiver:
    def __init__(
        self,
        store: ArchiveStore,
        lake: ParquetLake,
        bootstrap: str,
        topics: Topics,
        *,
        group: str = "marketpipe-archive",
        range_messages: int = 50_000,
        range_max_age_s: float = 2.0,
        before_commit: Callable[[], None] | None = None,
        consumer_config: dict[str, object] | None = None,
        market: bool = True,
    ) -> None:
        self.store = store
        self.lake = lake
        self.topic = topics.trades
        self.group = group
        self.plan_group = f"{group}:plan"
        self.range_messages = range_messages
        self.range_max_age_s = range_max_age_s
        self.before_commit = before_commit  # test hook: crash between the two writes
        self.totals = ArchiveTotals()
        self._pending: dict[int, _Pending] = {}
        self._plans: dict[int, int] = {}  # partition -> planned end not yet committed
        self._ledgers: dict[tuple[str, str, str], IdLedger] = {}  # in the lake already
        self._epochs: dict[str, dict[tuple[str, int], int]] = {}  # group -> claimed epochs
        self._fenced = False  # refused once: idle until the next assignment
        self._stop = threading.Event()
        self.consumer = OffsetsInStoreConsumer(
            bootstrap, group, [self.topic], self._assigned_offsets, on_assigned=None,
            **(consumer_config or {}),
        )  # fmt: skip
        # The market topic too, where the store keeps snapshots (PostgreSQL, BigQuery).
        self.market = (
            MarketArchiver(store, bootstrap, topics, group=f"{group}:market",
                           consumer_config=consumer_config)
            if market and stores_market_snapshots(store) else None
        )  # fmt: skip

    def _assigned_offsets(self, topic: str, partitions: list[int]) -> dict[int, int]:
        # Claim before reading: a commit of the previous owner either landed before the read
        # below or is refused after it.
        claimed = [(topic, p) for p in partitions]
        self._epochs = {}
        for group in (self.group, self.plan_group):
            self._epochs[group] = until_stored(partial(self.store.claim_partitions, group, claimed))
        self._fenced = False
        committed = until_stored(lambda: self.store.load_offsets(self.group, topic))
        planned = until_stored(lambda: self.store.load_offsets(self.plan_group, topic))
        self._pending = {}
        self._ledgers = {}
        self._plans = {p: end for p, end in planned.items() if end > committed.get(p, 0)}
        if self._plans:
            log.info("redoing planned archive ranges", extra={"plans": self._plans})
        return committed

    def stop(self) -> None:
        self._stop.set()

    def run(self, *, until_idle: bool = False, max_seconds: float | None = None) -> None:
        started = time.monotonic()
        idle_polls = 0
        try:
            while not self._stop.is_set():
                if max_seconds is not None and time.monotonic() - started > max_seconds:
                    break
                polled = self.consumer.poll(self.range_messages, 0.5)
                if self._fenced:
                    continue  # whatever it read belongs to the new owner now
                for message in polled.messages:
                    partition = int(message.partition() or 0)
                    self._pending.setdefault(partition, _Pending()).messages.append(message)
                self._flush_ready(force=not polled.messages)
                market = self.market.step() if self.market is not None else 0
                idle_polls = 0 if polled.messages or market else idle_polls + 1
                if (
                    until_idle
                    and idle_polls >= 3
                    and not self._pending
                    and self.consumer.caught_up()
                    and (self.market is None or self.market.caught_up())
                ):
                    break
        finally:
            try:
                if self.market is not None:
                    self.market.close()
            finally:
                self.consumer.close()

    def _flush_ready(self, *, force: bool) -> None:
        for partition in list(self._pending):
            pending = self._pending[partition]
            plan = self._plans.get(partition)
            while pending.messages:
                if plan is not None:
                    # Redo exactly the planned range, no more.
                    cut = sum(1 for m in pending.messages if int(m.offset() or 0) < plan)
                    if cut and int(pending.messages[cut - 1].offset() or 0) + 1 < plan:
                        break  # the range is not all here yet
                elif len(pending.messages) >= self.range_messages:
                    cut = self.range_messages
                elif force or time.monotonic() - pending.first_seen >= self.range_max_age_s:
                    cut = len(pending.messages)
                else:
                    break
                chunk, pending.messages = pending.messages[:cut], pending.messages[cut:]
                try:
                    self._archive(partition, chunk, replan=plan is None)
                except FencedOut as exc:
                    self._fence_out(exc)
                    return
                if plan is not None:
                    self.totals.redone += 1
                    self._plans.pop(partition, None)
                    plan = None
            if not pending.messages:
                del self._pending[partition]

    def _archive(self, partition: int, messages: list[Message], *, replan: bool) -> None:
        end = int(messages[-1].offset() or 0) + 1
        offsets = {(self.topic, partition): end}
        if replan:
            until_stored(
                lambda: self.store.commit(
                    CommitBatch(), consumer_group=self.plan_group, offsets=offsets,
                    fence=self._epochs.get(self.plan_group),
                )
            )  # fmt: skip
        trades = self._decode(messages)
        for_lake = self._not_in_lake(trades)
        if for_lake.num_rows:
            until_stored(lambda: self.lake.write_trades(for_lake))
            self._remember(for_lake)
        if self.before_commit is not None:
            self.before_commit()
        until_stored(
            lambda: self.store.commit(
                CommitBatch(trades=trades), consumer_group=self.group, offsets=offsets,
                fence=self._epochs.get(self.group),
            )
        )  # fmt: skip
        self.totals.ranges += 1
        self.totals.trades += trades.num_rows

    def _fence_out(self, exc: FencedOut) -> None:
        """Another member owns the partitions now: drop what this one holds. A lake write it
        made belongs to a range whose plan landed before the new owner's claim (a later plan
        is refused first), and the new owner redoes that range under the same names."""
        self.totals.fenced += 1
        self._pending = {}
        self._plans = {}
        self._fenced = True
        log.warning(
            "fenced out: another member owns the partitions now; waiting for a new assignment",
            extra={"error": str(exc)[:300], "group": self.group},
        )

    def _decode(self, messages: list[Message]) -> pa.Table:
        """The range's trades, each (exchange, symbol, trade_id) once: first delivery wins."""
        decoded = []
        for message in messages:
            try:
                decoded.append(serde.decode_trade(message.value()))
            except serde.PoisonMessage:
                self.totals.skipped += 1
        unique = {(t.exchange, t.symbol, t.trade_id): t for t in reversed(decoded)}
        self.totals.duplicates += len(decoded) - len(unique)
        return serde.trades_table(list(reversed(unique.values())))

    def _not_in_lake(self, trades: pa.Table) -> pa.Table:
        if not trades.num_rows:
            return trades
        dates = pc.strftime(trades.column("ts_event"), format="%Y-%m-%d").to_pylist()
        keys = list(zip(trades.column("exchange").to_pylist(),
                        trades.column("symbol").to_pylist(), dates, strict=True))  # fmt: skip
        ids = trades.column("trade_id").to_numpy()
        mask = np.ones(len(keys), dtype=bool)
        for key in set(keys):
            rows = np.array([k == key for k in keys])
            mask[rows] = self._ledger(key).unseen(ids[rows])
        fresh = trades.filter(pa.array(mask))
        self.totals.duplicates += trades.num_rows - fresh.num_rows
        return fresh

    def _remember(self, trades: pa.Table) -> None:
        dates = pc.strftime(trades.column("ts_event"), format="%Y-%m-%d").to_pylist()
        by_key: dict[tuple[str, str, str], list[int]] = {}
        for e, s, d, i in zip(trades.column("exchange").to_pylist(),
                              trades.column("symbol").to_pylist(), dates,
                              trades.column("trade_id").to_pylist(), strict=True):  # fmt: skip
            by_key.setdefault((e, s, d), []).append(i)
        for key, trade_ids in by_key.items():
            self._ledger(key).add(np.array(trade_ids, dtype=np.int64))

    def _ledger(self, key: tuple[str, str, str]) -> IdLedger:
        """Ids of one exchange/symbol/date already in the lake (read once per process)."""
        ledger = self._ledgers.get(key)
        if ledger is None:
            exchange, symbol, date = key
            start = int(np.datetime64(date, "us").astype(np.int64))
            end = start + 86_400_000_000
            stored = until_stored(
                lambda: self.lake.read_trades(
                    exchange=exchange, symbol=symbol, start=start, end=end
                )
            )
            ledger = IdLedger()
            if stored.num_rows:
                ledger.add(np.sort(stored.column("trade_id").to_numpy()))
            self._ledgers[key] = ledger
        return ledger
