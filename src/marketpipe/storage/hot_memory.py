"""The embedded hot tier: the last hour in memory — latest quotes, recent candles and alerts,
and the latest market snapshot per (source, asset, vs_currency).

It is a `Tier` of the router itself: it holds every candle this process committed since its
first one per series; no raw trades, and alerts only as a bounded feed (so no coverage for
them: the warm tier answers alert ranges, this one only what a hotter read asks of it).
"""

import threading
from collections import deque

from marketpipe.model.batch import CommitBatch
from marketpipe.model.intervals import INTERVAL_US
from marketpipe.model.records import Alert, Candle, MarketSnapshot, Quote, Trade
from marketpipe.storage.market_keys import SeriesKey, keep_latest
from marketpipe.storage.tiers import Series, TimeRange, matching_alerts, window


class MemoryHotTier:
    name = "hot"

    def __init__(self, retention_us: int = 3_600_000_000, max_alerts: int = 1000) -> None:
        self.retention_us = retention_us
        self._lock = threading.Lock()
        self._quotes: dict[tuple[str, str], Quote] = {}
        # Per (exchange, symbol, interval): open_time -> latest candle value, oldest first.
        self._candles: dict[tuple[str, str, str], dict[int, Candle]] = {}
        self._alerts: deque[Alert] = deque(maxlen=max_alerts)
        self._market: dict[SeriesKey, MarketSnapshot] = {}

    def apply(self, batch: CommitBatch) -> None:
        with self._lock:
            for quote in batch.quotes:
                self._quotes[(quote.exchange, quote.symbol)] = quote
            for candle in batch.candles:
                series = self._candles.setdefault(
                    (candle.exchange, candle.symbol, candle.interval), {}
                )
                series[candle.open_time] = candle
                self._trim(series, candle)
            self._alerts.extend(batch.alerts)
            keep_latest(self._market, batch.snapshots)

    def _trim(self, series: dict[int, Candle], newest: Candle) -> None:
        # Keep the last hour, but always a few windows of the long intervals.
        horizon = newest.open_time - max(self.retention_us, 3 * INTERVAL_US[newest.interval])
        while series:
            oldest = next(iter(series))
            if oldest >= horizon:
                break
            del series[oldest]

    def quotes(self) -> list[Quote]:
        with self._lock:
            return list(self._quotes.values())

    def latest_market_snapshots(self) -> list[MarketSnapshot]:
        """What this process committed: the newest per (source, asset, vs_currency)."""
        with self._lock:
            return [self._market[k] for k in sorted(self._market)]

    def _series(self, exchange: str, symbol: str, interval: str) -> list[Candle]:
        with self._lock:
            series = self._candles.get((exchange, symbol, interval), {})
            return sorted(series.values(), key=lambda c: c.open_time)

    # ---- the Tier protocol -----------------------------------------------------------------

    def coverage(self, series: Series) -> TimeRange | None:
        if series.kind != "candles" or series.symbol is None:
            return None
        candles = self._series(series.exchange, series.symbol, series.interval)
        if not candles:
            return None
        return TimeRange(candles[0].open_time, candles[-1].close_time)

    def candles(
        self, exchange: str, symbol: str, interval: str,
        start: int | None = None, end: int | None = None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> list[Candle]:  # fmt: skip
        """The series' candles with open time in `[start, end)`, oldest first."""
        series = self._series(exchange, symbol, interval)
        return window(series, lambda c: c.open_time, start, end, limit, newest_first)

    def trades(
        self, exchange: str, symbol: str, start: int | None, end: int | None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> list[Trade]:  # fmt: skip
        return []

    def alerts(
        self, exchange: str | None = None, symbol: str | None = None,
        start: int | None = None, end: int | None = None,
        *, kind: str | None = None, limit: int | None = None, newest_first: bool = False,
    ) -> list[Alert]:  # fmt: skip
        """The recent alerts feed (all of it by default), ordered by (ts, alert_id)."""
        with self._lock:
            feed = list(self._alerts)
        found = matching_alerts(feed, exchange, symbol, kind)
        return window(found, lambda a: a.ts, start, end, limit, newest_first)
