"""Independent reference computations: plain SQL over raw trades, sharing no pipeline code.

The recorded frames are parsed with the standard library's json (not the pipeline's parser),
candles are one SQL query, and sums are compared by one rule. Tests check the pipeline's
candles against this; the bench checks the peers' candles by the same rule.
"""

import gzip
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

import duckdb
import pyarrow as pa

# (native symbol, trade id, price, qty, buyer_is_maker, trade time in ms)
RawTrade = tuple[str, int, float, float, bool, int]
TRADES_SCHEMA = pa.schema(
    [("s", pa.string()), ("id", pa.int64()), ("p", pa.float64()), ("q", pa.float64()),
     ("m", pa.bool_()), ("ts", pa.int64())]
)  # fmt: skip

# Sums of floats (volumes, VWAP) depend on the order trades were added in, so engines agree
# on them to a relative 1e-9, not bit for bit; the absolute 1e-12 is far below the 8-decimal
# quantities any venue trades and only lets 0.0 meet a rounding residue.
REL_TOL = 1e-9
ABS_TOL = 1e-12
SUM_FIELDS = ("volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume", "vwap")


def sums_agree(a: float, b: float) -> bool:
    """Two sums of the same floats, added in possibly different orders, are equal."""
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


class ReferenceCandle(NamedTuple):
    """One window's candle by SQL; open/close (and first/last id) by (trade time, trade id)."""

    symbol: str
    open_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    trades: int
    taker_buy_volume: float
    first_id: int
    last_id: int
    taker_buy_quote_volume: float


class ReferenceHour(NamedTuple):
    """The hourly trading summary the dbt marts compute, from the reference candles."""

    hour_s: int
    open: float
    high: float
    low: float
    close: float
    vwap: float
    volume: float
    trades: int
    completeness_pct: float


class CandleFields(Protocol):
    """What a pipeline candle has for the comparison (open_time in µs, as stored)."""

    @property
    def open_time(self) -> int: ...
    @property
    def open(self) -> float: ...
    @property
    def high(self) -> float: ...
    @property
    def low(self) -> float: ...
    @property
    def close(self) -> float: ...
    @property
    def volume(self) -> float: ...
    @property
    def quote_volume(self) -> float: ...
    @property
    def taker_buy_volume(self) -> float: ...
    @property
    def taker_buy_quote_volume(self) -> float: ...
    @property
    def vwap(self) -> float: ...
    @property
    def trade_count(self) -> int: ...
    @property
    def first_trade_id(self) -> int: ...
    @property
    def last_trade_id(self) -> int: ...


def raw_trades(paths: Iterable[Path]) -> list[RawTrade]:
    """The trades of recorded `.recv.gz` files (`<recv µs> <frame json>` per line)."""
    rows = []
    for path in paths:
        with gzip.open(path, "rt") as handle:
            for line in handle:
                _, _, body = line.partition(" ")
                frame = json.loads(body)
                if frame.get("stream", "").endswith("@trade"):
                    d = frame["data"]
                    rows.append((d["s"], d["t"], float(d["p"]), float(d["q"]), d["m"], d["T"]))
    return rows


def reference_candles(trades: Sequence[RawTrade], minutes: int = 1) -> list[ReferenceCandle]:
    """Candles of `minutes` per symbol and window, ordered by (symbol, window)."""
    con = duckdb.connect()
    columns = list(zip(*trades, strict=True)) if trades else [()] * len(TRADES_SCHEMA)
    con.register("t", pa.table(columns, schema=TRADES_SCHEMA))
    width = 60_000 * minutes
    rows = con.execute(
        f"""
        SELECT s, (ts // {width}) * {width} AS open_ms,
               first(p ORDER BY ts, id), max(p), min(p), last(p ORDER BY ts, id),
               sum(q), sum(p * q), count(*), coalesce(sum(q) FILTER (WHERE NOT m), 0),
               first(id ORDER BY ts, id), last(id ORDER BY ts, id),
               coalesce(sum(p * q) FILTER (WHERE NOT m), 0)
        FROM t GROUP BY ALL ORDER BY s, open_ms
        """
    ).fetchall()
    con.close()
    return [ReferenceCandle(*row) for row in rows]


def reference_hours(trades: Sequence[RawTrade], symbol: str) -> list[ReferenceHour]:
    """Hourly OHLC, VWAP, volume, count and id completeness of one symbol's trades."""
    mine = [t for t in trades if t[0] == symbol]
    ids: dict[int, set[int]] = {}
    for _, trade_id, _, _, _, ts in mine:
        ids.setdefault(ts // 3_600_000, set()).add(trade_id)
    hours = []
    for c in reference_candles(mine, minutes=60):
        seen = ids[c.open_ms // 3_600_000]
        hours.append(
            ReferenceHour(
                hour_s=c.open_ms // 1000,
                open=c.open,
                high=c.high,
                low=c.low,
                close=c.close,
                vwap=c.quote_volume / c.volume,
                volume=c.volume,
                trades=c.trades,
                completeness_pct=100.0 * len(seen) / (max(seen) - min(seen) + 1),
            )
        )
    return hours


def mismatches(candle: CandleFields, ref: ReferenceCandle) -> list[str]:
    """The fields of `candle` that differ from the reference: exact for the window, prices,
    count and trade ids; `sums_agree` for the sums."""
    exact = {
        "open_time": (candle.open_time, ref.open_ms * 1000),
        "open": (candle.open, ref.open),
        "high": (candle.high, ref.high),
        "low": (candle.low, ref.low),
        "close": (candle.close, ref.close),
        "trade_count": (candle.trade_count, ref.trades),
        "first_trade_id": (candle.first_trade_id, ref.first_id),
        "last_trade_id": (candle.last_trade_id, ref.last_id),
    }
    sums = {
        "volume": (candle.volume, ref.volume),
        "quote_volume": (candle.quote_volume, ref.quote_volume),
        "taker_buy_volume": (candle.taker_buy_volume, ref.taker_buy_volume),
        "taker_buy_quote_volume": (candle.taker_buy_quote_volume, ref.taker_buy_quote_volume),
        "vwap": (candle.vwap, ref.quote_volume / ref.volume),
    }
    return [f"{name} {got!r} != {want!r}" for name, (got, want) in exact.items() if got != want] + [
        f"{name} {got!r} !~ {want!r}"
        for name, (got, want) in sums.items()
        if not sums_agree(got, want)
    ]


def assert_candles_match(
    candles: Sequence[CandleFields], reference: Sequence[ReferenceCandle]
) -> None:
    """`candles` are the reference's, window by window, in the same order."""
    assert len(candles) == len(reference), f"{len(candles)} candles, reference has {len(reference)}"
    for candle, ref in zip(candles, reference, strict=True):
        bad = mismatches(candle, ref)
        assert not bad, f"{ref.symbol} window {ref.open_ms}: {'; '.join(bad)}"
