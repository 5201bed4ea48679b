"""Trades as columns: the simulator's bulk currency (numpy arrays, exact decimal units).

Prices and quantities are held as int64 counts of 1e-8 (Binance prints 8 decimals), so a
value formats to Binance's decimal string and parses back to the identical float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from marketpipe.model.records import Trade
from marketpipe.model.schemas import TRADE_SCHEMA

UNITS = 100_000_000  # 1e-8, Binance's decimal precision
EXCHANGE = "binance"

I64 = npt.NDArray[np.int64]
BOOL = npt.NDArray[np.bool_]


def units_to_float(units: I64) -> npt.NDArray[np.float64]:
    """Exact: an int divided by 1e8 is the nearest double to the decimal, like float(str)."""
    return units / float(UNITS)


def format_units(units: int) -> str:
    """`6183763000000` -> `"61837.63000000"` (Binance's fixed 8 decimals)."""
    return f"{units // UNITS}.{units % UNITS:08d}"


@dataclass(slots=True)
class TradeColumns:
    """Trades of one or many symbols; `symbol_idx` indexes `symbols` (normalized names)."""

    symbols: list[str]
    symbol_idx: I64
    trade_id: I64
    price_units: I64
    qty_units: I64
    ts_us: I64  # exchange trade time; a whole millisecond where the venue prints ms (Binance)
    buyer_maker: BOOL  # Binance `m`: true means the taker sold
    exchange: str = EXCHANGE  # the venue the trades happened on

    def __len__(self) -> int:
        return int(self.trade_id.shape[0])

    @classmethod
    def empty(cls, symbols: list[str], exchange: str = EXCHANGE) -> TradeColumns:
        z = np.zeros(0, dtype=np.int64)
        return cls(symbols, z, z, z, z, z, np.zeros(0, dtype=np.bool_), exchange)

    def take(self, index: npt.NDArray[np.intp] | slice) -> TradeColumns:
        return TradeColumns(
            self.symbols,
            self.symbol_idx[index],
            self.trade_id[index],
            self.price_units[index],
            self.qty_units[index],
            self.ts_us[index],
            self.buyer_maker[index],
            self.exchange,
        )

    @staticmethod
    def concat(
        parts: list[TradeColumns], symbols: list[str], exchange: str | None = None
    ) -> TradeColumns:
        venue = exchange or (parts[0].exchange if parts else EXCHANGE)
        if not parts:
            return TradeColumns.empty(symbols, venue)
        return TradeColumns(
            symbols,
            np.concatenate([p.symbol_idx for p in parts]),
            np.concatenate([p.trade_id for p in parts]),
            np.concatenate([p.price_units for p in parts]),
            np.concatenate([p.qty_units for p in parts]),
            np.concatenate([p.ts_us for p in parts]),
            np.concatenate([p.buyer_maker for p in parts]),
            venue,
        )

    @property
    def price(self) -> npt.NDArray[np.float64]:
        return units_to_float(self.price_units)

    @property
    def qty(self) -> npt.NDArray[np.float64]:
        return units_to_float(self.qty_units)

    def to_trades(self, ts_recv_us: I64 | None = None) -> list[Trade]:
        """Records; `ts_recv` defaults to the trade time (the market's own view)."""
        recv = self.ts_us if ts_recv_us is None else ts_recv_us
        names, exchange = self.symbols, self.exchange
        return [
            Trade(exchange, names[s], t, p, q, "sell" if m else "buy", ts, r)
            for s, t, p, q, m, ts, r in zip(
                self.symbol_idx.tolist(),
                self.trade_id.tolist(),
                self.price.tolist(),
                self.qty.tolist(),
                self.buyer_maker.tolist(),
                self.ts_us.tolist(),
                recv.tolist(),
                strict=True,
            )
        ]

    def to_arrow(self, ts_recv_us: I64 | None = None) -> pa.Table:
        """A table of `TRADE_SCHEMA` (dictionary-free, exchange constant `self.exchange`)."""
        n = len(self)
        recv = self.ts_us if ts_recv_us is None else ts_recv_us
        ts_type = TRADE_SCHEMA.field("ts_event").type
        # Dictionary-encode then cast: far faster than building millions of Python strings.
        symbol = pa.DictionaryArray.from_arrays(
            pa.array(self.symbol_idx.astype(np.int32)), pa.array(self.symbols, type=pa.string())
        ).cast(pa.string())
        side = pa.DictionaryArray.from_arrays(
            pa.array(self.buyer_maker.astype(np.int8)), pa.array(["buy", "sell"])
        ).cast(pa.string())
        exchange = pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(n, dtype=np.int8)), pa.array([self.exchange])
        ).cast(pa.string())
        arrays = [
            exchange,
            symbol,
            pa.array(self.trade_id, type=pa.int64()),
            pa.array(self.price, type=pa.float64()),
            pa.array(self.qty, type=pa.float64()),
            side,
            pa.array(self.ts_us, type=pa.int64()).cast(ts_type),
            pa.array(recv, type=pa.int64()).cast(ts_type),
        ]
        return pa.Table.from_arrays(arrays, schema=TRADE_SCHEMA)
