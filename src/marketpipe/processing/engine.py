"""The candle engine: event-time windows, dedup, watermark, finality, late revisions, rollups.

It works on micro-batches of trades (Arrow, TRADE_SCHEMA) and returns one CommitBatch per
call for the sink to commit atomically. Per-window work is done on partial candles, never
per trade, so a batch of a million trades costs a few vectorized group-bys.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from marketpipe.model.batch import CommitBatch
from marketpipe.model.intervals import INTERVAL_US, INTERVALS, MINUTE_US
from marketpipe.model.records import Candle, Position
from marketpipe.model.schemas import TRADE_INT_SCHEMA, TRADE_SCHEMA
from marketpipe.model.venues import has_sequential_ids
from marketpipe.observability import native as native_status
from marketpipe.processing import native_dedup, native_fold
from marketpipe.processing.alerts import AlertRules, AlertThresholds
from marketpipe.processing.candles import (
    PARTIAL_COLUMNS,
    CandleAcc,
    partial_candles,
    rollup_partials,
)
from marketpipe.processing.keyset import KeySet
from marketpipe.processing.ledger import IdLedger
from marketpipe.processing.windows import (
    NO_WATERMARK,
    EventTime,
    EventTimeSettings,
    SymbolKey,
    Window,
    WindowBook,
    WindowKey,
)

# Batches up to this many trades take the plain-Python path. Measured (thread CPU, 20
# symbols): 50 trades 1.1 ms vs 5.4 ms on polars, 500 trades 3.1 vs 7.3, 2000 trades 6.8 vs 7.9.
ROW_PATH_MAX = 2000
# With the native fold the row path stays the cheaper one for longer (thread CPU per batch,
# 20 symbols, both folding natively): 2000 trades 2.7 ms on rows vs 4.9 ms on polars, 5000
# 5.1 vs 6.3, 10000 10.5 vs 5.8 (docs/native.md).
NATIVE_ROW_PATH_MAX = 5000
# On the row path the native fold pays from about this many fresh trades: below it, its fixed
# cost (Arrow out and back) exceeds the Python fold's (thread CPU per batch, 20 symbols:
# 200 trades 1.36 ms vs 1.27, 300 1.42 vs 1.39, 400 1.47 vs 1.52, 2000 2.7 vs 3.9).
NATIVE_ROW_FOLD_MIN = 400

# A batch's partial candles as columns: exchange, symbol, open_time, then PARTIAL_COLUMNS.
PartialColumns = dict[str, list[Any]]
_PARTIAL_FIELDS = ("exchange", "symbol", "open_time", *PARTIAL_COLUMNS)


@dataclass(slots=True)
class SymbolStats:
    ledger: IdLedger | KeySet  # a KeySet for venues whose trade ids are keys (model.venues)
    max_ts_event: int = 0
    trades_seen: int = 0
    duplicates: int = 0


class CandleEngine(WindowBook):
    """Turns trades into candles of every interval and alerts, in event time. Finality,
    emitting and eviction, the recovery horizon and the idle watermark are `WindowBook`'s."""

    def __init__(
        self,
        rules: AlertRules,
        *,
        grace_us: int,
        allowed_lateness_us: int,
        idle_watermark: bool = True,
        idle_lag_us: int = 0,
        intervals: Iterable[str] = INTERVALS,
        row_path_max: int | None = None,
        native: bool | None = None,
        native_row_fold_min: int = NATIVE_ROW_FOLD_MIN,
    ) -> None:
        """`native`: fold candles on the native path (the Rust extension) when True, on the
        Python path when False; None takes the native path whenever the extension is
        active (`observability.native`). True without the extension is a ConfigError.
        Batches of up to `row_path_max` trades take the row path (default: the measured
        crossover of the chosen path); there the native path folds natively from
        `native_row_fold_min` fresh trades on."""
        timing = EventTime(
            grace_us=grace_us, allowed_lateness_us=allowed_lateness_us,
            idle_watermark=idle_watermark, idle_lag_us=idle_lag_us,
        )  # fmt: skip
        super().__init__(rules, timing, intervals)
        if native is None:
            native = native_status.extension() is not None
        elif native:
            native_fold.extension()  # fails fast, saying why it is missing
        self.native = native
        self.native_dedup = native and native_dedup.available()
        if row_path_max is None:
            row_path_max = NATIVE_ROW_PATH_MAX if native else ROW_PATH_MAX
        self.row_path_max = row_path_max
        self.native_row_fold_min = native_row_fold_min
        if self.intervals[0] != "1m":
            raise ValueError("the first interval must be 1m: rollups merge 1m partials")
        self._symbols: dict[SymbolKey, SymbolStats] = {}

    @classmethod
    def from_timing(cls, timing: EventTime, alerts: AlertThresholds) -> "CandleEngine":
        return cls(
            AlertRules(alerts), grace_us=timing.grace_us,
            allowed_lateness_us=timing.allowed_lateness_us,
            idle_watermark=timing.idle_watermark, idle_lag_us=timing.idle_lag_us,
        )  # fmt: skip

    @classmethod
    def from_settings(cls, engine: EventTimeSettings, alerts: AlertThresholds) -> "CandleEngine":
        """The engine of the settings' `engine` and `alerts` sections, as every mode runs it."""
        return cls.from_timing(EventTime.from_settings(engine), alerts)

    # ---- state ---------------------------------------------------------------------------

    def positions(self) -> list[Position]:
        return [self._position(key) for key in self._symbols]

    def restore(
        self, positions: Iterable[Position], windows: Iterable[tuple[Candle, int, int]]
    ) -> None:
        """Rebuild state after a restart: id ledgers from positions, open windows from stored
        partial candles (with the event times of their first and last trades)."""
        for p in positions:
            ledger: IdLedger | KeySet = (
                IdLedger(p.id_ranges, p.gaps_found)
                if has_sequential_ids(p.exchange, p.last_trade_id)
                else KeySet(floor=p.last_trade_id)  # every stored key counts as seen
            )
            stats = SymbolStats(ledger, p.max_ts_event, p.trades_seen, p.duplicates)
            self._symbols[(p.exchange, p.symbol)] = stats
            self._raise_watermark(p.exchange, p.max_ts_event - self.grace_us)
        minutes: list[Candle] = []
        for candle, open_ts, close_ts in windows:
            acc = CandleAcc.from_candle(candle, open_ts, close_ts)
            if self._restore_window(candle, acc) and candle.interval == "1m" and candle.is_final:
                minutes.append(candle)
        for candle in sorted(minutes, key=lambda c: c.open_time):
            self.rules.remember(candle)

    # ---- processing ----------------------------------------------------------------------

    def process(self, trades: pa.Table) -> CommitBatch:
        """One micro-batch: dedup, merge into windows, advance watermarks, finalize, alert."""
        if trades.num_rows <= self.row_path_max:
            return self._process_rows(trades)
        out = CommitBatch()
        touched: dict[WindowKey, None] = {}
        symbols: dict[SymbolKey, None] = {}
        fresh = self._dedup(trades, out, symbols)
        if fresh.height:
            too_late = self._too_late(fresh)
            ontime = fresh.filter(~too_late)
            late = fresh.filter(too_late)
            if ontime.height:
                self._merge(ontime, touched)
            # In order of first appearance, as the row path: an exchange's first watermark
            # fixes where it sits in `_watermark`, hence the order windows finalize and emit.
            for exchange, max_ts in (
                fresh.group_by("exchange", maintain_order=True)
                .agg(pl.col("ts_event").max())
                .iter_rows()
            ):
                self._raise_watermark(exchange, max_ts - self.grace_us)
            out.alerts.extend(self.rules.whales(fresh))
            out.trades = _to_arrow(fresh)
            out.late_trades = _to_arrow(late)
        return self._close_batch(out, touched, symbols)

    def _close_batch(
        self, out: CommitBatch, touched: dict[WindowKey, None], symbols: dict[SymbolKey, None]
    ) -> CommitBatch:
        self._settle(touched, out)
        out.positions = [self._position(key) for key in symbols]
        return out

    def _process_rows(self, trades: pa.Table) -> CommitBatch:
        """`process` on plain Python values, for the small batches of live mode: there the
        fixed cost of a few dozen polars calls (~0.1 ms each) dwarfs the work itself.
        Same steps, same results (the property tests compare both paths)."""
        out = CommitBatch()
        touched: dict[WindowKey, None] = {}
        symbols: dict[SymbolKey, None] = {}
        c = trades.cast(TRADE_INT_SCHEMA).to_pydict()
        ex, sym, ids, ts = c["exchange"], c["symbol"], c["trade_id"], c["ts_event"]
        price, qty, side = c["price"], c["qty"], c["side"]
        groups: dict[SymbolKey, list[int]] = {}
        for i in range(trades.num_rows):
            groups.setdefault((ex[i], sym[i]), []).append(i)
        fresh: list[int] = []
        for key, rows in groups.items():
            fresh.extend(self._dedup_rows(key, rows, ids, ts, out))
            symbols[key] = None
        if fresh:
            late: list[int] = []
            ontime: list[int] = []
            lateness = self.allowed_lateness_us
            for i in fresh:
                watermark = self._watermark.get(ex[i], NO_WATERMARK)
                minute_close = ts[i] - ts[i] % MINUTE_US + MINUTE_US
                (late if minute_close + lateness <= watermark else ontime).append(i)
            if self.native and ontime and len(ontime) >= self.native_row_fold_min:
                self._merge_native(trades.take(pa.array(ontime, pa.int64())), touched)
            else:
                minutes: dict[tuple[str, str, int], CandleAcc] = {}
                for i in ontime:
                    t, p, q = ts[i], price[i], qty[i]
                    buy = side[i] == "buy"
                    acc = CandleAcc(
                        (t, ids[i]), p, (t, ids[i]), p, p, p, q, p * q, 1,
                        q if buy else 0.0, p * q if buy else 0.0,
                    )  # fmt: skip
                    minute = (ex[i], sym[i], t - t % MINUTE_US)
                    if (known := minutes.get(minute)) is None:
                        minutes[minute] = acc
                    else:
                        known.merge(acc)
                self._merge_minutes(minutes, touched)
            newest: dict[str, int] = {}
            for i in fresh:
                if ts[i] > newest.get(ex[i], NO_WATERMARK):
                    newest[ex[i]] = ts[i]
            for exchange, max_ts in newest.items():
                self._raise_watermark(exchange, max_ts - self.grace_us)
            threshold = self.rules.settings.whale_notional
            out.alerts.extend(
                self.rules.whale(ex[i], sym[i], ids[i], price[i], qty[i], side[i], ts[i])
                for i in fresh
                if price[i] * qty[i] >= threshold
            )
            out.trades = trades.take(pa.array(fresh, pa.int64())).cast(TRADE_SCHEMA)
            out.late_trades = trades.take(pa.array(late, pa.int64())).cast(TRADE_SCHEMA)
        return self._close_batch(out, touched, symbols)

    def _dedup_rows(
        self, key: SymbolKey, rows: list[int], ids: list[int], ts: list[int], out: CommitBatch
    ) -> list[int]:
        """Rows of one symbol not seen before, first occurrence kept, in arrival order."""
        stats = self._symbols.get(key)
        if stats is None:
            stats = self._symbols[key] = SymbolStats(_new_ledger(key[0], ids[rows[0]]))
        first: dict[int, int] = {}
        for i in rows:
            first.setdefault(ids[i], i)
        candidates = list(first.values())
        candidate_ids = np.fromiter(first.keys(), dtype=np.int64, count=len(first))
        unseen = stats.ledger.unseen(candidate_ids)
        keep = [i for i, new in zip(candidates, unseen.tolist(), strict=True) if new]
        stats.ledger.add(candidate_ids[unseen])
        stats.trades_seen += len(keep)
        dropped = len(rows) - len(keep)
        stats.duplicates += dropped
        out.duplicates += dropped
        if keep:
            stats.max_ts_event = max(stats.max_ts_event, max(ts[i] for i in keep))
        return keep

    def _merge_minutes(
        self, minutes: dict[tuple[str, str, int], CandleAcc], touched: dict[WindowKey, None]
    ) -> None:
        """Roll this batch's 1m partials up per interval, then merge each into its window
        once (so a final window's revision rises once per batch, as in `_merge`)."""
        for interval in self.intervals:
            length = INTERVAL_US[interval]
            partials: dict[WindowKey, CandleAcc] = {}
            for (exchange, symbol, minute), acc in minutes.items():
                key = (exchange, symbol, interval, minute - minute % length)
                if (known := partials.get(key)) is None:
                    partials[key] = _copy(acc)
                else:
                    known.merge(acc)
            for key, acc in partials.items():
                self._merge_window(key, acc, touched)

    def flush(self) -> CommitBatch:
        """End of input: every open window becomes final. Watermarks stay where the data put
        them, so later input still merges as late revisions within allowed lateness."""
        out = CommitBatch()
        touched: dict[WindowKey, None] = {}
        for key, window in self._windows.items():
            if not window.is_final:
                window.is_final = True
                touched[key] = None
        self._emit(touched, out)
        return out

    # ---- steps ---------------------------------------------------------------------------

    def _dedup(
        self, trades: pa.Table, out: CommitBatch, symbols: dict[SymbolKey, None]
    ) -> pl.DataFrame:
        """Drop trades seen before (in this batch or any earlier one), per symbol."""
        frame = pl.from_arrow(trades.cast(TRADE_INT_SCHEMA))
        assert isinstance(frame, pl.DataFrame)
        if self.native_dedup:
            return self._dedup_native(frame, out, symbols)
        parts = []
        for (exchange, symbol), part in frame.partition_by(
            "exchange", "symbol", as_dict=True
        ).items():
            key = (str(exchange), str(symbol))
            stats = self._symbols.get(key)
            if stats is None:
                first_id = int(part["trade_id"][0])
                stats = self._symbols[key] = SymbolStats(_new_ledger(key[0], first_id))
            delivered = part.height
            part = part.unique(subset="trade_id", keep="first", maintain_order=True)
            ids = part["trade_id"].to_numpy()
            unseen = stats.ledger.unseen(ids)
            if not unseen.all():
                part = part.filter(pl.Series(unseen))
                ids = ids[unseen]
            stats.ledger.add(ids)
            stats.trades_seen += part.height
            stats.duplicates += delivered - part.height
            out.duplicates += delivered - part.height
            if part.height:
                newest = int(part["ts_event"].to_numpy().max())
                stats.max_ts_event = max(stats.max_ts_event, newest)
            symbols[key] = None
            parts.append(part)
        return pl.concat(parts) if parts else frame.clear()

    def _dedup_native(
        self, frame: pl.DataFrame, out: CommitBatch, symbols: dict[SymbolKey, None]
    ) -> pl.DataFrame:
        """`_dedup` on the native path: the batch's first occurrences found in one native
        pass instead of partition_by and a unique per symbol (Polars' string views go in:
        reading them costs a third of pyarrow's strings), then the same ledger check per
        symbol and one gather of the rows kept, symbol after symbol as `pl.concat` has them."""
        found = native_dedup.first_rows(frame)
        ids_all = frame["trade_id"].to_numpy()
        ts_all = frame["ts_event"].to_numpy()
        kept = []
        for pair in found.pairs:
            key = (pair.exchange, pair.symbol)
            rows = found.rows[pair.start : pair.end]
            ids = ids_all[rows]
            stats = self._symbols.get(key)
            if stats is None:
                # A symbol's first row is always kept here: ids[0] is its first id, as above.
                stats = self._symbols[key] = SymbolStats(_new_ledger(key[0], int(ids[0])))
            unseen = stats.ledger.unseen(ids)
            if not unseen.all():
                rows, ids = rows[unseen], ids[unseen]
            stats.ledger.add(ids)
            dropped = pair.delivered - len(rows)
            stats.trades_seen += len(rows)
            stats.duplicates += dropped
            out.duplicates += dropped
            if len(rows):
                stats.max_ts_event = max(stats.max_ts_event, int(ts_all[rows].max()))
            symbols[key] = None
            kept.append(rows)
        return frame[np.concatenate(kept)] if kept else frame.clear()

    def _too_late(self, trades: pl.DataFrame) -> pl.Series:
        if not self._watermark:
            return pl.Series([False] * trades.height, dtype=pl.Boolean)
        watermark = pl.col("exchange").replace_strict(
            self._watermark, default=NO_WATERMARK, return_dtype=pl.Int64
        )
        minute_close = pl.col("ts_event") - pl.col("ts_event") % MINUTE_US + MINUTE_US
        return trades.select((minute_close + self.allowed_lateness_us <= watermark).alias("late"))[
            "late"
        ]

    def _merge(self, trades: pl.DataFrame, touched: dict[WindowKey, None]) -> None:
        """Fold the batch into 1m partials, roll them up per interval, merge each into its
        window: natively in one call, or with Polars (the reference)."""
        if self.native:
            self._merge_native(trades, touched)
            return
        minutes = partial_candles(trades, MINUTE_US)
        for interval in self.intervals:
            length = INTERVAL_US[interval]
            partials = minutes if interval == "1m" else rollup_partials(minutes, length)
            columns = partials.to_dict(as_series=False)
            self._merge_partials([interval] * partials.height, columns, touched)

    def _merge_native(self, trades: native_fold.ArrowData, touched: dict[WindowKey, None]) -> None:
        """`_merge` on the native path: every interval's partials in one batch."""
        lengths = {INTERVAL_US[interval]: interval for interval in self.intervals}
        columns = native_fold.fold_candles(trades, list(lengths)).to_pydict()
        intervals = [lengths[length] for length in columns["length_us"]]
        self._merge_partials(intervals, columns, touched)

    def _merge_partials(
        self, intervals: list[str], columns: PartialColumns, touched: dict[WindowKey, None]
    ) -> None:
        """Merge partial candles (row i of `columns` of interval i of `intervals`), in their
        order, each into its window."""
        for (
            interval, exchange, symbol, open_time, open_, open_ts, open_id, close, close_ts,
            close_id, high, low, volume, quote_volume, trade_count, buy_volume, buy_quote_volume,
        ) in zip(intervals, *(columns[name] for name in _PARTIAL_FIELDS), strict=True):  # fmt: skip
            acc = CandleAcc(
                (open_ts, open_id), open_, (close_ts, close_id), close, high, low, volume,
                quote_volume, trade_count, buy_volume, buy_quote_volume,
            )  # fmt: skip
            self._merge_window((exchange, symbol, interval, open_time), acc, touched)

    def _merge_window(self, key: WindowKey, acc: CandleAcc, touched: dict[WindowKey, None]) -> None:
        """Merge one batch's partial candle into its window (a final one is revised)."""
        window = self._windows.get(key)
        if window is None:
            self._add_window(key, Window(acc), key[3] + INTERVAL_US[key[2]])
        else:
            window.acc.merge(acc)
            if window.is_final:
                window.revision += 1
        touched[key] = None

    def _position(self, key: SymbolKey) -> Position:
        stats = self._symbols[key]
        ledger = stats.ledger
        return Position(
            exchange=key[0],
            symbol=key[1],
            last_trade_id=ledger.max_id if ledger.max_id is not None else -1,
            max_ts_event=stats.max_ts_event,
            id_ranges=ledger.ranges,
            gaps_found=ledger.gaps_found,
            gaps_filled=ledger.gaps_filled,
            trades_seen=stats.trades_seen,
            duplicates=stats.duplicates,
        )


def _new_ledger(exchange: str, first_id: int) -> IdLedger | KeySet:
    """A symbol's ledger, chosen by its venue and its first id (keys sit above KEY_FLOOR)."""
    return IdLedger() if has_sequential_ids(exchange, first_id) else KeySet()


def _copy(acc: CandleAcc) -> CandleAcc:
    """A copy (the row path rolls one minute into six windows): 0.37 µs a call, where
    `dataclasses.replace` took 2.5 µs, a fifth of a small live batch's CPU."""
    return CandleAcc(
        acc.open_key, acc.open, acc.close_key, acc.close, acc.high, acc.low, acc.volume,
        acc.quote_volume, acc.trade_count, acc.taker_buy_volume, acc.taker_buy_quote_volume,
    )  # fmt: skip


def _to_arrow(frame: pl.DataFrame) -> pa.Table:
    return frame.to_arrow().cast(TRADE_INT_SCHEMA).cast(TRADE_SCHEMA)
