"""The driver side of the Spark engine: what happens to the 1m windows Spark hands over.

Spark's update-mode query gives, per micro-batch, the full current value of every 1m window
that changed. This book applies the native engine's rules to them, with the native code:
finality by the per-exchange watermark (largest event time minus grace), revisions of final
windows, rollups as merges of 1m candles (the `CandleAcc` monoid), eviction after allowed
lateness, and the alert rules (`AlertRules`: whales per trade, spikes on final minutes).
"""

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import polars as pl

from marketpipe.model.batch import CommitBatch
from marketpipe.model.intervals import INTERVAL_US, MINUTE_US, ROLLUP_INTERVALS
from marketpipe.model.records import Alert, Candle, Position
from marketpipe.processing.alerts import AlertRules, AlertThresholds
from marketpipe.processing.candles import CandleAcc

WindowKey = tuple[str, str, str, int]
SymbolKey = tuple[str, str]
DAY_US = INTERVAL_US["1d"]


@dataclass(slots=True)
class _Window:
    acc: CandleAcc
    is_final: bool = False
    revision: int = 0


@dataclass(slots=True)
class _Seen:
    last_trade_id: int = -1
    max_ts_event: int = 0


class MinuteBook:
    def __init__(self, rules: AlertThresholds, *, grace_us: int, allowed_lateness_us: int) -> None:
        self.rules = AlertRules(rules)
        self.grace_us = grace_us
        self.allowed_lateness_us = allowed_lateness_us
        self.windows: dict[WindowKey, _Window] = {}
        # 1m values per symbol, kept while a rollup window containing them may change.
        self.minutes: dict[SymbolKey, dict[int, CandleAcc]] = {}
        self.watermark: dict[str, int] = {}
        self.seen: dict[SymbolKey, _Seen] = {}

    # ---- restore -------------------------------------------------------------------------

    def restore(self, positions: Iterable[Position], candles: Iterable[Candle]) -> None:
        """State after a driver restart: watermarks from positions, windows from candles."""
        for p in positions:
            self.seen[(p.exchange, p.symbol)] = _Seen(p.last_trade_id, p.max_ts_event)
            self._raise(p.exchange, p.max_ts_event - self.grace_us)
        final_minutes = []
        for c in candles:
            acc = CandleAcc.from_candle(c, c.open_time, c.close_time - 1)
            if c.interval == "1m":
                self.minutes.setdefault((c.exchange, c.symbol), {})[c.open_time] = acc
                if c.is_final:
                    final_minutes.append(c)
            key = (c.exchange, c.symbol, c.interval, c.open_time)
            wm = self.watermark.get(c.exchange)
            if wm is None or c.close_time + self.allowed_lateness_us > wm:
                self.windows[key] = _Window(dataclasses.replace(acc), c.is_final, c.revision)
        for c in sorted(final_minutes, key=lambda c: c.open_time):
            self.rules.remember(c)

    def restore_from(self) -> int | None:
        """The oldest open_time of stored candles the book needs back (None: no state)."""
        if not self.watermark:
            return None
        oldest = min(self.watermark.values()) - self.allowed_lateness_us
        return oldest - oldest % DAY_US - DAY_US

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
            wm = self.watermark.get(exchange)
            if wm is not None and open_time + MINUTE_US + self.allowed_lateness_us <= wm:
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
            self._raise(exchange, ts - self.grace_us)
        if whales:
            out.alerts.extend(_unique(self.rules.whales(pl.DataFrame(whales))))
        self._settle(touched, out)
        out.positions = [self._position(k) for k in sorted(changed)]
        return out

    def advance(self, exchange: str, watermark: int) -> CommitBatch:
        """Move a quiet exchange's watermark (wall clock), finalizing what it passes."""
        out = CommitBatch()
        self._raise(exchange, watermark)
        self._settle({}, out)
        return out

    # ---- steps ---------------------------------------------------------------------------

    def _update(self, key: WindowKey, acc: CandleAcc) -> None:
        window = self.windows.get(key)
        if window is None:
            self.windows[key] = _Window(acc)
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

    def _raise(self, exchange: str, value: int) -> None:
        if value > self.watermark.get(exchange, -(2**62)):
            self.watermark[exchange] = value

    def _settle(self, touched: dict[WindowKey, None], out: CommitBatch) -> None:
        """Finalize what the watermarks passed, emit touched windows, alert, evict."""
        for key, window in self.windows.items():
            wm = self.watermark.get(key[0])
            if not window.is_final and wm is not None and key[3] + INTERVAL_US[key[2]] <= wm:
                window.is_final = True
                touched[key] = None
        final_minutes: list[Candle] = []
        for key in touched:
            exchange, symbol, interval, open_time = key
            window = self.windows[key]
            candle = window.acc.to_candle(
                exchange, symbol, interval, open_time, INTERVAL_US[interval],
                is_final=window.is_final, revision=window.revision,
            )  # fmt: skip
            out.candles.append(candle)
            if interval == "1m" and window.is_final:
                final_minutes.append(candle)
        for candle in sorted(final_minutes, key=lambda c: (c.exchange, c.symbol, c.open_time)):
            out.alerts.extend(self.rules.on_final_minute(candle))
            self.rules.remember(candle)
        self._evict()

    def _evict(self) -> None:
        lateness = self.allowed_lateness_us
        for key in [
            k for k in self.windows
            if k[0] in self.watermark
            and k[3] + INTERVAL_US[k[2]] + lateness <= self.watermark[k[0]]
        ]:  # fmt: skip
            del self.windows[key]
        for (exchange, _), minutes in self.minutes.items():
            wm = self.watermark.get(exchange)
            if wm is None:
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
