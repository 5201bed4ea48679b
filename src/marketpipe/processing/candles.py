"""Candles as a monoid: partial candles of one window merge into the candle of the union.

Open and close are ordered by `(ts_event, trade_id)`, so the accumulator keeps those keys;
any partition or arrival order of the same trades merges to the same candle.
"""

from dataclasses import dataclass
from typing import Any

import polars as pl

from marketpipe.model.records import Candle

OrderKey = tuple[int, int]  # (ts_event, trade_id)

PARTIAL_COLUMNS = (
    "open", "open_ts", "open_id", "close", "close_ts", "close_id", "high", "low", "volume",
    "quote_volume", "trade_count", "taker_buy_volume", "taker_buy_quote_volume",
)  # fmt: skip


@dataclass(slots=True)
class CandleAcc:
    """Mergeable state of one window's candle."""

    open_key: OrderKey
    open: float
    close_key: OrderKey
    close: float
    high: float
    low: float
    volume: float
    quote_volume: float
    trade_count: int
    taker_buy_volume: float
    taker_buy_quote_volume: float

    @classmethod
    def from_partial(cls, row: dict[str, Any]) -> "CandleAcc":
        return cls(
            open_key=(row["open_ts"], row["open_id"]),
            open=row["open"],
            close_key=(row["close_ts"], row["close_id"]),
            close=row["close"],
            high=row["high"],
            low=row["low"],
            volume=row["volume"],
            quote_volume=row["quote_volume"],
            trade_count=row["trade_count"],
            taker_buy_volume=row["taker_buy_volume"],
            taker_buy_quote_volume=row["taker_buy_quote_volume"],
        )

    @classmethod
    def from_candle(cls, candle: Candle, open_ts: int, close_ts: int) -> "CandleAcc":
        """Rebuild from a stored candle plus the event times of its first and last trades."""
        return cls(
            open_key=(open_ts, candle.first_trade_id),
            open=candle.open,
            close_key=(close_ts, candle.last_trade_id),
            close=candle.close,
            high=candle.high,
            low=candle.low,
            volume=candle.volume,
            quote_volume=candle.quote_volume,
            trade_count=candle.trade_count,
            taker_buy_volume=candle.taker_buy_volume,
            taker_buy_quote_volume=candle.taker_buy_quote_volume,
        )

    def merge(self, other: "CandleAcc") -> None:
        if other.open_key < self.open_key:
            self.open_key, self.open = other.open_key, other.open
        if other.close_key > self.close_key:
            self.close_key, self.close = other.close_key, other.close
        self.high = max(self.high, other.high)
        self.low = min(self.low, other.low)
        self.volume += other.volume
        self.quote_volume += other.quote_volume
        self.trade_count += other.trade_count
        self.taker_buy_volume += other.taker_buy_volume
        self.taker_buy_quote_volume += other.taker_buy_quote_volume

    def to_candle(
        self,
        exchange: str,
        symbol: str,
        interval: str,
        open_time: int,
        length_us: int,
        *,
        is_final: bool,
        revision: int,
    ) -> Candle:
        return Candle(
            exchange=exchange,
            symbol=symbol,
            interval=interval,
            open_time=open_time,
            close_time=open_time + length_us,
            open=self.open,
            high=self.high,
            low=self.low,
            close=self.close,
            volume=self.volume,
            quote_volume=self.quote_volume,
            trade_count=self.trade_count,
            taker_buy_volume=self.taker_buy_volume,
            taker_buy_quote_volume=self.taker_buy_quote_volume,
            vwap=self.quote_volume / self.volume if self.volume else self.close,
            first_trade_id=self.open_key[1],
            last_trade_id=self.close_key[1],
            is_final=is_final,
            revision=revision,
        )


def partial_candles(trades: pl.DataFrame, length_us: int) -> pl.DataFrame:
    """Partial candles per (exchange, symbol, window) of `trades` (ts_event as Int64 µs)."""
    notional = pl.col("price") * pl.col("qty")
    is_buy = pl.col("side") == "buy"
    return (
        trades.with_columns(open_time=pl.col("ts_event") - pl.col("ts_event") % length_us)
        .sort("ts_event", "trade_id")
        .group_by("exchange", "symbol", "open_time", maintain_order=True)
        .agg(
            open=pl.col("price").first(),
            open_ts=pl.col("ts_event").first(),
            open_id=pl.col("trade_id").first(),
            close=pl.col("price").last(),
            close_ts=pl.col("ts_event").last(),
            close_id=pl.col("trade_id").last(),
            high=pl.col("price").max(),
            low=pl.col("price").min(),
            volume=pl.col("qty").sum(),
            quote_volume=notional.sum(),
            trade_count=pl.len().cast(pl.Int64),
            taker_buy_volume=pl.col("qty").filter(is_buy).sum(),
            taker_buy_quote_volume=notional.filter(is_buy).sum(),
        )
    )


def rollup_partials(partials: pl.DataFrame, length_us: int) -> pl.DataFrame:
    """Merge finer partial candles into windows of `length_us` (the monoid, vectorized)."""
    return (
        partials.with_columns(open_time=pl.col("open_time") - pl.col("open_time") % length_us)
        .group_by("exchange", "symbol", "open_time", maintain_order=True)
        .agg(
            open=pl.col("open").sort_by("open_ts", "open_id").first(),
            open_ts=pl.col("open_ts").min(),
            open_id=pl.col("open_id").sort_by("open_ts", "open_id").first(),
            close=pl.col("close").sort_by("close_ts", "close_id").last(),
            close_ts=pl.col("close_ts").max(),
            close_id=pl.col("close_id").sort_by("close_ts", "close_id").last(),
            high=pl.col("high").max(),
            low=pl.col("low").min(),
            volume=pl.col("volume").sum(),
            quote_volume=pl.col("quote_volume").sum(),
            trade_count=pl.col("trade_count").sum(),
            taker_buy_volume=pl.col("taker_buy_volume").sum(),
            taker_buy_quote_volume=pl.col("taker_buy_quote_volume").sum(),
        )
    )
