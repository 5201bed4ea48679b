"""The embedded hot tier: the last hour in memory — latest quotes, recent candles and alerts."""

import threading
from collections import deque

from marketpipe.model.batch import CommitBatch
from marketpipe.model.intervals import INTERVAL_US
from marketpipe.model.records import Alert, Candle, Quote


class MemoryHotTier:
    def __init__(self, retention_us: int = 3_600_000_000, max_alerts: int = 1000) -> None:
        self.retention_us = retention_us
        self._lock = threading.Lock()
        self._quotes: dict[tuple[str, str], Quote] = {}
        # Per (exchange, symbol, interval): open_time -> latest candle value, oldest first.
        self._candles: dict[tuple[str, str, str], dict[int, Candle]] = {}
        self._alerts: deque[Alert] = deque(maxlen=max_alerts)

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

    def candles(self, exchange: str, symbol: str, interval: str) -> list[Candle]:
        with self._lock:
            series = self._candles.get((exchange, symbol, interval), {})
            return sorted(series.values(), key=lambda c: c.open_time)

    def alerts(self) -> list[Alert]:
        with self._lock:
            return list(self._alerts)
