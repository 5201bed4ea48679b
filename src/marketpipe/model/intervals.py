"""Candle intervals and epoch-aligned window arithmetic (all in microseconds)."""

from typing import Final

MINUTE_US: Final = 60_000_000

INTERVAL_US: Final[dict[str, int]] = {
    "1m": MINUTE_US,
    "5m": 5 * MINUTE_US,
    "15m": 15 * MINUTE_US,
    "1h": 60 * MINUTE_US,
    "4h": 240 * MINUTE_US,
    "1d": 1440 * MINUTE_US,
}
INTERVALS: Final[tuple[str, ...]] = tuple(INTERVAL_US)
ROLLUP_INTERVALS: Final[tuple[str, ...]] = INTERVALS[1:]


def interval_us(interval: str) -> int:
    """Length of an interval in microseconds; raises KeyError naming the valid ones."""
    try:
        return INTERVAL_US[interval]
    except KeyError:
        raise KeyError(
            f"unknown interval {interval!r}; expected one of {', '.join(INTERVALS)}"
        ) from None


def window_start(ts_us: int, length_us: int) -> int:
    """Start of the epoch-aligned window `[start, start + length)` holding `ts_us`."""
    return ts_us - ts_us % length_us
