"""Text every venue's frames need: ISO-8601 times with microseconds, fixed-decimal numbers.

Hand-formatted, not through datetime or Decimal: these run once per trade per frame.
"""

from __future__ import annotations

import time

from marketpipe.simulator.columns import UNITS

_SECOND_TEXT: dict[int, str] = {}
_MASK = (1 << 64) - 1


def mix64(x: int) -> int:
    """splitmix64: a well-spread 64-bit value from a counter (for deterministic ids)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def iso_us(ts_us: int) -> str:
    """`1695628177708706` -> `"2023-09-25T07:49:37.708706Z"`."""
    seconds, micros = divmod(ts_us, 1_000_000)
    head = _SECOND_TEXT.get(seconds)
    if head is None:
        if len(_SECOND_TEXT) > 4096:
            _SECOND_TEXT.clear()
        head = _SECOND_TEXT[seconds] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{head}.{micros:06d}Z"


def decimals_of(units: int) -> int:
    """Decimals a size of `units` (1e-8) needs: a tick of 0.01 has 2, of 1 has 0."""
    decimals = 8
    while decimals > 0 and units % 10 == 0:
        units //= 10
        decimals -= 1
    return decimals


def fixed(units: int, decimals: int) -> str:
    """`units` (1e-8) with exactly `decimals` decimals (truncating finer digits)."""
    whole, frac = divmod(units, UNITS)
    if decimals == 0:
        return str(whole)
    return f"{whole}.{frac // 10 ** (8 - decimals):0{decimals}d}"


def number(units: int) -> str:
    """`units` as the shortest JSON number: 6183763000000 -> `61837.63`."""
    whole, frac = divmod(units, UNITS)
    if frac == 0:
        return f"{whole}.0"
    return f"{whole}.{frac:08d}".rstrip("0")
