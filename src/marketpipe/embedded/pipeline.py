"""The pipeline core shared by replay and live: engine + store + metrics, one batch at a time."""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from marketpipe.config import Settings
from marketpipe.model.batch import CommitBatch
from marketpipe.model.records import DeadLetter, MarketSnapshot, Quote
from marketpipe.observability import metrics as m
from marketpipe.processing.engine import CandleEngine
from marketpipe.storage.sink import BatchSink

log = logging.getLogger(__name__)

CommitHook = Callable[[CommitBatch, int], None]  # (batch, perf_counter_ns when committed)
# Before the commit of a batch from `ingest`: (batch, perf_counter_ns when folded). A batch
# given to it is then given to the CommitHook, or to the CommitFailedHook if its commit fails.
FoldHook = Callable[[CommitBatch, int], None]
CommitFailedHook = Callable[[CommitBatch, BaseException], None]


@dataclass(slots=True)
class Totals:
    batches: int = 0
    trades_in: int = 0
    trades_stored: int = 0
    # Trades dropped as already seen, by any stage; `duplicates_source` of them by the source.
    duplicates: int = 0
    duplicates_source: int = 0
    late: int = 0
    candles: int = 0
    alerts: int = 0
    dead_letters: int = 0
    snapshots: int = 0  # market data (CoinGecko), committed beside the trades


class Pipeline:
    """Processes micro-batches and commits each in one storage transaction.

    On construction it recovers: id ledgers from stored positions, open windows from stored
    partial candles, so a restart continues exactly where the last commit left off.

    `on_fold` sees each ingested batch as soon as the engine has folded it, before the
    (slower) commit: live runs push its trades and provisional candles from there. Batches
    of `advance_idle` and `flush` have no such step: they only reach `on_commit`.
    """

    def __init__(
        self,
        settings: Settings,
        store: BatchSink,
        on_commit: CommitHook | None = None,
        *,
        on_fold: FoldHook | None = None,
        on_commit_failed: CommitFailedHook | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.on_commit = on_commit
        self.on_fold = on_fold
        self.on_commit_failed = on_commit_failed
        self.engine = CandleEngine.from_settings(settings.engine, settings.alerts)
        self.totals = Totals()
        self._recover()

    def _recover(self) -> None:
        positions = self.store.positions()
        horizon = self.engine.recovery_horizon(positions)
        if horizon is None:
            return
        windows = self.store.open_windows(horizon)
        self.engine.restore(positions, windows)
        log.info(
            "recovered state",
            extra={"symbols": len(positions), "open_windows": self.engine.open_windows},
        )

    def ingest(
        self,
        trades: pa.Table,
        quotes: Sequence[Quote] = (),
        dead_letters: Sequence[DeadLetter] = (),
        snapshots: Sequence[MarketSnapshot] = (),
    ) -> CommitBatch:
        batch = self.engine.process(trades)
        batch.quotes = list(quotes)
        batch.dead_letters = list(dead_letters)
        batch.snapshots = list(snapshots)  # no engine work: stored as they came
        on_fold = self.on_fold
        folded = on_fold is not None and not batch.is_empty
        if on_fold is not None and folded:
            on_fold(batch, time.perf_counter_ns())
        self._commit(batch, trades, folded)
        return batch

    def advance_idle(self, now_us: int, idle_lag_us: int | None = None) -> CommitBatch:
        """Live only: let quiet exchanges' watermarks follow the wall clock (`now_us`), less
        grace and the idle lag (`idle_lag_us`, else the configured one)."""
        out = self.engine.advance_idle(now_us, idle_lag_us)
        self._commit(out, None)
        return out

    def count_source_duplicates(self, count: int) -> None:
        """Trades the source dropped before they reached the engine (already forwarded)."""
        self.totals.duplicates += count
        self.totals.duplicates_source += count

    def flush(self) -> CommitBatch:
        batch = self.engine.flush()
        self._commit(batch, None)
        return batch

    def _commit(self, batch: CommitBatch, delivered: pa.Table | None, folded: bool = False) -> None:
        if batch.is_empty:
            return
        started = time.perf_counter()
        try:
            self.store.commit(batch)
        except Exception as exc:
            if folded and self.on_commit_failed is not None:
                # Its trades may be on screens already: say so before the error ends the run.
                try:
                    self.on_commit_failed(batch, exc)
                except Exception:  # the store's error is the one to raise
                    log.exception("the commit-failed hook failed")
            raise
        done_ns = time.perf_counter_ns()
        elapsed = time.perf_counter() - started
        self._count(batch, delivered, elapsed)
        if self.on_commit is not None:
            self.on_commit(batch, done_ns)

    def _count(self, batch: CommitBatch, delivered: pa.Table | None, elapsed: float) -> None:
        t = self.totals
        t.batches += 1
        t.trades_stored += batch.trades.num_rows
        t.duplicates += batch.duplicates
        t.late += batch.late_trades.num_rows
        t.candles += len(batch.candles)
        t.alerts += len(batch.alerts)
        t.dead_letters += len(batch.dead_letters)
        t.snapshots += len(batch.snapshots)
        m.BATCH_COMMIT_SECONDS.observe(elapsed)
        m.LAST_COMMIT_TIMESTAMP.set(time.time())
        m.note_last_trades((p.exchange, p.symbol, p.max_ts_event) for p in batch.positions)
        m.INSERTED.labels("trades_recent").inc(batch.trades.num_rows)
        m.INSERTED.labels("candles").inc(len(batch.candles))
        m.INSERTED.labels("alerts").inc(len(batch.alerts))
        if batch.snapshots:
            m.INSERTED.labels("market_snapshots").inc(len(batch.snapshots))
            m.CONSUMED.labels("market_snapshot").inc(len(batch.snapshots))
        for alert in batch.alerts:
            m.ALERTS.labels(alert.kind).inc()
        for candle in batch.candles:
            if candle.revision:
                m.REVISIONS.labels(candle.interval).inc()
        if delivered is not None and delivered.num_rows:
            t.trades_in += delivered.num_rows
            m.CONSUMED.labels("trade").inc(delivered.num_rows)
            m.BATCH_TRADES.observe(delivered.num_rows)
            now_us = time.time_ns() // 1000
            newest_event = pc.max(delivered.column("ts_event")).value
            newest_recv = pc.max(delivered.column("ts_recv")).value
            if newest_event is not None:
                m.EVENT_TO_COMMIT_SECONDS.observe(max(0.0, (now_us - newest_event) / 1e6))
            if newest_recv is not None:
                m.RECV_TO_COMMIT_SECONDS.observe(max(0.0, (now_us - newest_recv) / 1e6))
        for exchange, count in _by_exchange(batch.trades).items():
            m.TRADES_IN.labels(exchange).inc(count)
        if batch.duplicates:
            m.DUPLICATES.labels("engine").inc(batch.duplicates)
        for exchange, count in _by_exchange(batch.late_trades).items():
            m.LATE_TRADES.labels(exchange).inc(count)
        m.CONSUMED.labels("quote").inc(len(batch.quotes))
        for exchange, watermark in self.engine.watermarks().items():
            m.WATERMARK_LAG_SECONDS.labels(exchange).set(time.time() - watermark / 1e6)


def _by_exchange(trades: pa.Table) -> dict[str, int]:
    if not trades.num_rows:
        return {}
    counts = pc.value_counts(trades.column("exchange"))
    return {str(v["values"]): int(v["counts"]) for v in counts.to_pylist()}
