"""A batch sink in memory: the whole store of a test, in either mode.

It keeps what the warm stores keep, with their semantics (candles replace by window, alerts
and trades insert-or-ignore by key, positions replace), and the Kafka offsets, partition
epochs and Spark fences of cluster mode, so the embedded `Pipeline` and the cluster's native
processor run on it unchanged. A commit is trivially atomic. Nothing is persisted.

Partition fencing is the PostgreSQL warehouse's: `claim_partitions` bumps each partition's
epoch, and a `commit(fence=...)` naming a partition claimed since (or never claimed) is
refused as a whole: nothing is written, the refusal is counted (warehouse "memory") and
FencedOut raised.
"""

import copy
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from marketpipe.model.batch import CommitBatch
from marketpipe.model.errors import FencedOut
from marketpipe.model.records import Alert, Candle, DeadLetter, MarketSnapshot, Position, Trade
from marketpipe.model.schemas import from_table
from marketpipe.observability import metrics as m
from marketpipe.storage.market_keys import SnapshotKey, keep_latest, snapshot_key
from marketpipe.storage.tiers import window

Partitions = Mapping[tuple[str, int], int]  # (topic, partition) -> next offset, or epoch

CandleKey = tuple[str, str, str, int]  # (exchange, symbol, interval, open_time)
TradeKey = tuple[str, str, int]  # (exchange, symbol, trade_id)


@dataclass
class MemorySink:
    stores_market_snapshots = True  # no annotation: a class attribute, not a field
    candle_map: dict[CandleKey, Candle] = field(default_factory=dict)
    alerts: dict[str, Alert] = field(default_factory=dict)
    position_map: dict[tuple[str, str], Position] = field(default_factory=dict)
    trade_map: dict[TradeKey, Trade] = field(default_factory=dict)
    snapshot_map: dict[SnapshotKey, MarketSnapshot] = field(default_factory=dict)
    # (consumer group, topic, partition) -> next offset
    offsets: dict[tuple[str | None, str, int], int] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    commits: int = 0
    fences: dict[str, int] = field(default_factory=dict)  # Spark query -> last batch id
    # (consumer group, topic, partition) -> epoch of its last claim
    epochs: dict[tuple[str, str, int], int] = field(default_factory=dict)

    # ---- writes --------------------------------------------------------------------------

    def commit(
        self,
        batch: CommitBatch,
        *,
        consumer_group: str | None = None,
        offsets: Partitions | None = None,
        fence: Partitions | None = None,
    ) -> int:
        """Store the batch (and the Kafka offsets that produced it); returns its sequence.
        With `fence` {(topic, partition): epoch} (from `claim_partitions`), the whole commit
        is refused if one of those partitions was claimed since or never claimed."""
        if (offsets or fence) and consumer_group is None:
            raise ValueError("offsets and fence need a consumer_group")
        if fence and consumer_group is not None:
            self._check_fence(consumer_group, fence)
        for t in from_table(batch.trades, Trade):
            self.trade_map.setdefault((t.exchange, t.symbol, t.trade_id), t)
        for c in batch.candles:
            self.candle_map[(c.exchange, c.symbol, c.interval, c.open_time)] = c
        for a in batch.alerts:
            self.alerts.setdefault(a.alert_id, a)
        for p in batch.positions:
            self.position_map[(p.exchange, p.symbol)] = p
        for s in batch.snapshots:
            self.snapshot_map.setdefault(snapshot_key(s), s)
        for (topic, partition), offset in (offsets or {}).items():
            self.offsets[(consumer_group, topic, partition)] = offset
        self.dead_letters.extend(batch.dead_letters)
        self.commits += 1
        return self.commits

    def claim_partitions(
        self, consumer_group: str, partitions: Collection[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        """Take ownership of `partitions`: each one's epoch goes up by one (the first claim
        gives 1); returns the new epochs."""
        claimed = {}
        for topic, partition in sorted(set(partitions)):
            key = (consumer_group, topic, partition)
            self.epochs[key] = claimed[(topic, partition)] = self.epochs.get(key, 0) + 1
        return claimed

    def _check_fence(self, consumer_group: str, fence: Partitions) -> None:
        stale = {k: e for k, e in fence.items() if self.epochs.get((consumer_group, *k)) != e}
        if stale:
            m.COMMITS_FENCED.labels("memory", consumer_group).inc()
            raise FencedOut(
                f"{consumer_group}: partitions claimed by another member (or never claimed): "
                f"{sorted(stale)}"
            )

    def commit_fenced(self, batch: CommitBatch, *, fence: tuple[str, int]) -> bool:
        """Apply a Spark micro-batch at most once per (query, batch id); False if skipped."""
        name, batch_id = fence
        if self.fences.get(name, -1) >= batch_id:
            return False
        self.commit(batch, consumer_group="", offsets={})
        self.fences[name] = batch_id
        return True

    # ---- restore -------------------------------------------------------------------------

    def load_offsets(self, consumer_group: str, topic: str) -> dict[int, int]:
        return {p: o for (g, t, p), o in self.offsets.items() if (g, t) == (consumer_group, topic)}

    def fence(self, query_name: str) -> int | None:
        return self.fences.get(query_name)

    def positions(self) -> list[Position]:
        # Copies: the engine must not share id ledgers with what the sink holds.
        return [copy.deepcopy(self.position_map[k]) for k in sorted(self.position_map)]

    def open_windows(self, min_close_time: int) -> list[tuple[Candle, int, int]]:
        """As the warm stores answer it: first and last trades' event times where the sink
        holds those trades, else the window's edges."""
        found = []
        for c in self.candle_map.values():
            if c.close_time > min_close_time:
                first = self.trade_map.get((c.exchange, c.symbol, c.first_trade_id))
                last = self.trade_map.get((c.exchange, c.symbol, c.last_trade_id))
                found.append((
                    c,
                    c.open_time if first is None else first.ts_event,
                    c.close_time - 1 if last is None else last.ts_event,
                ))  # fmt: skip
        return found

    # ---- reads (as the warm stores': None means every exchange / symbol) -----------------

    def candles(
        self, exchange: str | None, symbol: str | None, interval: str,
        start: int | None, end: int | None, *, limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Candle]:  # fmt: skip
        picked = sorted(
            (c for c in self.candle_map.values()
             if c.interval == interval and exchange in (None, c.exchange)
             and symbol in (None, c.symbol)),
            key=lambda c: (c.open_time, c.exchange, c.symbol),
        )  # fmt: skip
        return window(picked, lambda c: c.open_time, start, end, limit, newest_first)

    def trades(
        self, exchange: str | None, symbol: str | None, start: int | None, end: int | None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> list[Trade]:  # fmt: skip
        picked = sorted(
            (t for t in self.trade_map.values()
             if exchange in (None, t.exchange) and symbol in (None, t.symbol)),
            key=lambda t: (t.ts_event, t.trade_id),
        )  # fmt: skip
        return window(picked, lambda t: t.ts_event, start, end, limit, newest_first)

    def latest_market_snapshots(self) -> list[MarketSnapshot]:
        latest: dict[tuple[str, str, str], MarketSnapshot] = {}
        keep_latest(latest, self.snapshot_map.values())
        return [latest[k] for k in sorted(latest)]

    def market_snapshots(
        self, asset: str | None, start: int | None, end: int | None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> list[MarketSnapshot]:  # fmt: skip
        picked = sorted(
            (s for s in self.snapshot_map.values() if asset in (None, "", s.asset)),
            key=lambda s: (s.ts_source, s.source, s.asset, s.vs_currency),
        )
        return window(picked, lambda s: s.ts_source, start, end, limit, newest_first)
