"""Open windows under per-exchange watermarks: the finality, emit and evict core that the
candle engine and the Spark job's book share.

A window whose end is at or below its exchange's watermark is final; one whose end plus the
allowed lateness is at or below it can no longer change and is evicted. Both are found by
heaps ordered by window end, so a batch costs what it finalizes, not what is open.
"""

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from marketpipe.model.batch import CommitBatch
from marketpipe.model.intervals import INTERVAL_US, INTERVALS
from marketpipe.model.records import Candle, Position
from marketpipe.processing.alerts import AlertRules
from marketpipe.processing.candles import CandleAcc

WindowKey = tuple[str, str, str, int]  # exchange, symbol, interval, open_time
SymbolKey = tuple[str, str]  # exchange, symbol

NO_WATERMARK = -(2**62)


class EventTimeSettings(Protocol):
    """What the event-time rules need; `marketpipe.config.EngineSettings` provides it."""

    @property
    def grace_s(self) -> float: ...
    @property
    def allowed_lateness_s(self) -> float: ...
    @property
    def idle_watermark(self) -> bool: ...
    @property
    def idle_lag_s(self) -> float: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class EventTime:
    """The event-time rules in microseconds. Live, a quiet exchange's watermark follows the
    wall clock minus grace and `idle_lag_us` (clock skew plus network delay), if enabled."""

    grace_us: int = 2_000_000
    allowed_lateness_us: int = 3_600_000_000
    idle_watermark: bool = True
    idle_lag_us: int = 1_000_000

    @staticmethod
    def from_settings(settings: EventTimeSettings) -> "EventTime":
        return EventTime(
            grace_us=int(settings.grace_s * 1e6),
            allowed_lateness_us=int(settings.allowed_lateness_s * 1e6),
            idle_watermark=settings.idle_watermark,
            idle_lag_us=int(settings.idle_lag_s * 1e6),
        )


@dataclass(slots=True)
class Window:
    acc: CandleAcc
    is_final: bool = False
    revision: int = 0


class WindowBook:
    """Windows of every interval, the watermark per exchange, and what follows from them."""

    def __init__(
        self, rules: AlertRules, timing: EventTime, intervals: Iterable[str] = INTERVALS
    ) -> None:
        self.rules = rules
        self.timing = timing
        self.intervals = tuple(intervals)
        self._windows: dict[WindowKey, Window] = {}
        self._to_finalize: dict[str, list[tuple[int, WindowKey]]] = {}
        self._to_evict: dict[str, list[tuple[int, WindowKey]]] = {}
        self._watermark: dict[str, int] = {}

    @property
    def grace_us(self) -> int:
        return self.timing.grace_us

    @property
    def allowed_lateness_us(self) -> int:
        return self.timing.allowed_lateness_us

    # ---- state ---------------------------------------------------------------------------

    def watermark(self, exchange: str) -> int | None:
        return self._watermark.get(exchange)

    def watermarks(self) -> dict[str, int]:
        return dict(self._watermark)

    @property
    def open_windows(self) -> int:
        return len(self._windows)

    def recovery_horizon(self, positions: Sequence[Position]) -> int | None:
        """After a restart: the close time at or below which no stored window can change any
        more (every later one must be restored). None: nothing stored, nothing to restore."""
        if not positions:
            return None
        oldest_watermark = min(p.max_ts_event for p in positions) - self.grace_us
        return oldest_watermark - self.allowed_lateness_us

    # ---- the wall clock ------------------------------------------------------------------

    def advance_watermark(self, exchange: str, watermark: int) -> CommitBatch:
        """Move one exchange's watermark forward, finalizing and evicting what it passes."""
        out = CommitBatch()
        touched: dict[WindowKey, None] = {}
        self._raise_watermark(exchange, watermark)
        self._finalize(exchange, touched)
        self._emit(touched, out)
        self._evict(exchange)
        return out

    def advance_idle(self, now_us: int, lag_us: int | None = None) -> CommitBatch:
        """Live: let every exchange's watermark follow the wall clock (`now_us`) minus grace
        and the idle lag (`lag_us`, else the configured one), so a quiet exchange's last
        windows still go final. Nothing happens when the idle watermark is off."""
        out = CommitBatch()
        if not self.timing.idle_watermark:
            return out
        lag = self.timing.idle_lag_us if lag_us is None else lag_us
        for exchange in list(self._watermark):
            part = self.advance_watermark(exchange, now_us - self.grace_us - lag)
            out.candles.extend(part.candles)
            out.alerts.extend(part.alerts)
        return out

    # ---- steps ---------------------------------------------------------------------------

    def _expired(self, exchange: str, close_time: int) -> bool:
        """Can a window of `exchange` ending at `close_time` no longer change?"""
        watermark = self._watermark.get(exchange, NO_WATERMARK)
        return close_time + self.allowed_lateness_us <= watermark

    def _restore_window(self, candle: Candle, acc: CandleAcc) -> bool:
        """Reopen a stored window unless it can no longer change; True if reopened."""
        if candle.interval not in self.intervals or self._expired(
            candle.exchange, candle.close_time
        ):
            return False
        key = (candle.exchange, candle.symbol, candle.interval, candle.open_time)
        self._add_window(key, Window(acc, candle.is_final, candle.revision), candle.close_time)
        return True

    def _add_window(self, key: WindowKey, window: Window, close_time: int) -> None:
        self._windows[key] = window
        exchange = key[0]
        if not window.is_final:
            heapq.heappush(self._to_finalize.setdefault(exchange, []), (close_time, key))
        heapq.heappush(
            self._to_evict.setdefault(exchange, []), (close_time + self.allowed_lateness_us, key)
        )

    def _raise_watermark(self, exchange: str, value: int) -> None:
        if value > self._watermark.get(exchange, NO_WATERMARK):
            self._watermark[exchange] = value

    def _settle(self, touched: dict[WindowKey, None], out: CommitBatch) -> None:
        """End of a batch: finalize what the watermarks passed, emit what changed, evict."""
        for exchange in self._watermark:
            self._finalize(exchange, touched)
        self._emit(touched, out)
        for exchange in self._watermark:
            self._evict(exchange)

    def _finalize(self, exchange: str, touched: dict[WindowKey, None]) -> None:
        heap = self._to_finalize.get(exchange)
        watermark = self._watermark[exchange]
        while heap and heap[0][0] <= watermark:
            _, key = heapq.heappop(heap)
            window = self._windows.get(key)
            if window is not None and not window.is_final:
                window.is_final = True
                touched[key] = None

    def _evict(self, exchange: str) -> None:
        heap = self._to_evict.get(exchange)
        watermark = self._watermark[exchange]
        while heap and heap[0][0] <= watermark:
            _, key = heapq.heappop(heap)
            self._windows.pop(key, None)

    def _emit(self, touched: dict[WindowKey, None], out: CommitBatch) -> None:
        """Publish every touched window; final 1m candles go through the spike rules, in
        event-time order per symbol (the relative rule looks back at earlier minutes)."""
        final_minutes: list[Candle] = []
        for key in touched:
            exchange, symbol, interval, open_time = key
            window = self._windows[key]
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
        if final_minutes:
            out.alerts.extend(self.rules.across_venues(self._watermark))
