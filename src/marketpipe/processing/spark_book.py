"""The driver side of the Spark engine: what happens to the 1m windows Spark hands over.

Spark's update-mode query gives, per micro-batch, the full current value of every 1m window
that changed. This book applies the native engine's rules to them, with the native code:
finality by the per-exchange watermark (largest event time minus grace), revisions of final
windows, rollups as merges of 1m candles (the `CandleAcc` monoid), eviction after allowed
lateness, and the alert rules (`AlertRules`: whales per trade, spikes on final minutes).
Finality, emitting, eviction and the idle watermark are the engine's own (`WindowBook`);
what is the book's is that Spark hands over full 1m values (they replace, not merge) and
that rollups are recomputed from the 1m values kept while their day may change.
"""

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from marketpipe.model.batch import CommitBatch
from marketpipe.model.intervals import INTERVAL_US, MINUTE_US, ROLLUP_INTERVALS
from marketpipe.model.records import Alert, Candle, Position
from marketpipe.processing.alerts import AlertRules, AlertThresholds
from marketpipe.processing.candles import CandleAcc
from marketpipe.processing.windows import (
    EventTime,
    SymbolKey,
    Window,
    WindowBook,
    WindowKey,
)

DAY_US = INTERVAL_US["1d"]


@dataclass(slots=True)
class _Seen:
    last_trade_id: int = -1
    max_ts_event: int = 0


class MinuteBook(WindowBook):
    def __init__(self, rules: AlertThresholds, timing: EventTime) -> None:
        super().__init__(AlertRules(rules), timing)
        # 1m values per symbol, kept while a rollup window containing them may change.
        self.minutes: dict[SymbolKey, dict[int, CandleAcc]] = {}
        self.seen: dict[SymbolKey, _Seen] = {}

    # ---- restore -------------------------------------------------------------------------

    def restore(self, positions: Iterable[Position], candles: Iterable[Candle]) -> None:
        """State after a driver restart: watermarks from positions, windows from candles."""
        for p in positions:
            self.seen[(p.exchange, p.symbol)] = _Seen(p.last_trade_id, p.max_ts_event)
            self._raise_watermark(p.exchange, p.max_ts_event - self.grace_us)
        final_minutes = []
        for c in candles:
            acc = CandleAcc.from_candle(c, c.open_time, c.close_time - 1)
            if c.interval == "1m":
                self.minutes.setdefault((c.exchange, c.symbol), {})[c.open_time] = acc
                if c.is_final:
                    final_minutes.append(c)
            self._restore_window(c, dataclasses.replace(acc))
        for c in sorted(final_minutes, key=lambda c: c.open_time):
            self.rules.remember(c)

    def restore_from(self, positions: Sequence[Position]) -> int | None:
        """The oldest open_time of stored candles the book needs back (None: no state): every
        window that may still change, and every minute of the days (the widest rollup) those
        windows are in."""
        horizon = self.recovery_horizon(positions)
        if horizon is None:
            return None
        return horizon - horizon % DAY_US - DAY_US

    # ---- one micro-batch -----------------------------------------------------------------

    def apply(self, rows: Iterable[dict[str, Any]]) -> CommitBatch:
        out = CommitBatch()
        touched: dict[WindowKey, None] = {}
        rollups: dict[WindowKey, None] = {}
        whales: list[dict[str, Any]] = []
        newest: dict[str, int] = {}
        changed: set[SymbolKey] = set()
        for r in rows:
            exchange, symbol, open_time = r["exchange"], r["symbol"], r["open_time"]
            if self._expired(exchange, open_time + MINUTE_US):
                continue  # evicted already: the native engine calls it late too
            acc = CandleAcc.from_partial(r)
            key = (exchange, symbol, "1m", open_time)
            self._update(key, acc)
            touched[key] = None
            self.minutes.setdefault((exchange, symbol), {})[open_time] = acc
            for interval in ROLLUP_INTERVALS:
                length = INTERVAL_US[interval]
                rollups[(exchange, symbol, interval, open_time - open_time % length)] = None
            whales.extend(r.get("whales") or [])
            newest[exchange] = max(newest.get(exchange, 0), r["close_ts"])
            seen = self.seen.setdefault((exchange, symbol), _Seen())
            seen.last_trade_id = max(seen.last_trade_id, r["close_id"])
            seen.max_ts_event = max(seen.max_ts_event, r["close_ts"])
            changed.add((exchange, symbol))
        for key in rollups:
            self._update(key, self._rollup(key))
            touched[key] = None
        for exchange, ts in newest.items():
            self._raise_watermark(exchange, ts - self.grace_us)
        if whales:
            out.alerts.extend(_unique(self.rules.whales(pl.DataFrame(whales))))
        self._settle(touched, out)
        out.positions = [self._position(k) for k in sorted(changed)]
        return out

    # ---- steps ---------------------------------------------------------------------------

    def _update(self, key: WindowKey, acc: CandleAcc) -> None:
        """Spark's value of a window is its full current value: it replaces, never merges."""
        window = self._windows.get(key)
        if window is None:
            self._add_window(key, Window(acc), key[3] + INTERVAL_US[key[2]])
        else:
            window.acc = acc
            if window.is_final:
                window.revision += 1

    def _rollup(self, key: WindowKey) -> CandleAcc:
        exchange, symbol, interval, start = key
        minutes = self.minutes[(exchange, symbol)]
        merged: CandleAcc | None = None
        for t in range(start, start + INTERVAL_US[interval], MINUTE_US):
            acc = minutes.get(t)
            if acc is None:
                continue
            if merged is None:
                merged = dataclasses.replace(acc)
            else:
                merged.merge(acc)
        assert merged is not None
        return merged

    def _evict(self, exchange: str) -> None:
        super()._evict(exchange)
        lateness = self.allowed_lateness_us
        wm = self._watermark[exchange]
        for (ex, _), minutes in self.minutes.items():
            if ex != exchange:
                continue
            # A minute is needed while the day (the widest rollup) holding it may change.
            for t in [t for t in minutes if t - t % DAY_US + DAY_US + lateness <= wm]:
                del minutes[t]

    def _position(self, key: SymbolKey) -> Position:
        seen = self.seen[key]
        return Position(
            exchange=key[0], symbol=key[1], last_trade_id=seen.last_trade_id,
            max_ts_event=seen.max_ts_event, id_ranges=[], gaps_found=0, gaps_filled=0,
            trades_seen=0, duplicates=0,
        )  # fmt: skip


def _unique(alerts: list[Alert]) -> list[Alert]:
    return list({a.alert_id: a for a in alerts}.values())
