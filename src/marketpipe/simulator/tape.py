"""A venue's trade tape: what its REST history serves, as bounded numpy columns.

Venue-neutral (Binance keeps its own `history.TradeHistory`, with aggregate ids and klines):
one symbol's trades in id order, ids consecutive, times in µs. The oldest quarter falls off
when the cap is reached, so a long run keeps bounded memory.
"""

from __future__ import annotations

import numpy as np

from marketpipe.model.records import Trade
from marketpipe.simulator.columns import I64, TradeColumns

_FIELDS = ("trade_id", "price_units", "qty_units", "ts_us", "buyer_maker")


class TradeTape:
    def __init__(self, max_trades: int = 1_000_000) -> None:
        self.max_trades = max(1000, max_trades)
        self._cols: dict[str, I64] = {f: np.zeros(1024, dtype=np.int64) for f in _FIELDS}
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def col(self, name: str) -> I64:
        return self._cols[name][: self._len]

    @property
    def first_id(self) -> int | None:
        return int(self._cols["trade_id"][0]) if self._len else None

    @property
    def last_id(self) -> int | None:
        return int(self._cols["trade_id"][self._len - 1]) if self._len else None

    def append(self, cols: TradeColumns) -> None:
        """Append one symbol's trades (in id order, continuing the last id)."""
        n = len(cols)
        if n == 0:
            return
        self._reserve(n)
        end = self._len + n
        values = (cols.trade_id, cols.price_units, cols.qty_units, cols.ts_us, cols.buyer_maker)
        for name, column in zip(_FIELDS, values, strict=True):
            self._cols[name][self._len : end] = column
        self._len = end

    def _reserve(self, n: int) -> None:
        need = self._len + n
        if need > self.max_trades:
            drop = min(self._len, max(need - self.max_trades, self.max_trades // 4))
            for arr in self._cols.values():
                arr[: self._len - drop] = arr[drop : self._len]
            self._len -= drop
            need = self._len + n
        capacity = int(self._cols["trade_id"].shape[0])
        if need > capacity:
            new_cap = max(need, min(self.max_trades, capacity * 2))
            for name, arr in self._cols.items():
                grown = np.zeros(new_cap, dtype=np.int64)
                grown[: self._len] = arr[: self._len]
                self._cols[name] = grown

    def index_of_id(self, trade_id: int) -> int:
        """Index of the first kept trade with id >= `trade_id`."""
        first = self.first_id
        if first is None:
            return 0
        return min(max(trade_id - first, 0), self._len)

    def index_after_time(self, ts_us: int) -> int:
        """Index of the first trade with a time strictly after `ts_us`."""
        return int(np.searchsorted(self.col("ts_us"), ts_us, side="right"))

    def columns(self, start: int, stop: int, symbol: str, exchange: str) -> TradeColumns:
        sl = slice(start, stop)
        return TradeColumns(
            [symbol],
            np.zeros(max(0, stop - start), dtype=np.int64),
            self.col("trade_id")[sl].copy(),
            self.col("price_units")[sl].copy(),
            self.col("qty_units")[sl].copy(),
            self.col("ts_us")[sl].copy(),
            self.col("buyer_maker")[sl].astype(np.bool_),
            exchange,
        )


def tapes_truth(tapes: dict[str, TradeTape], exchange: str) -> list[Trade]:
    """Every kept trade of `tapes` (symbol -> tape), ordered by `(ts_event, symbol, id)`."""
    symbols = list(tapes)
    parts = []
    for i, (symbol, tape) in enumerate(tapes.items()):
        part = tape.columns(0, len(tape), symbol, exchange)
        part.symbols = symbols
        part.symbol_idx = np.full(len(part), i, dtype=np.int64)
        parts.append(part)
    merged = TradeColumns.concat(parts, symbols, exchange)
    order = np.lexsort((merged.trade_id, merged.symbol_idx, merged.ts_us))
    return merged.take(order).to_trades()


def split_by_symbol(cols: TradeColumns) -> dict[int, TradeColumns]:
    """Symbol index -> that symbol's trades of `cols` (in their order)."""
    out: dict[int, TradeColumns] = {}
    for i in np.unique(cols.symbol_idx).tolist():
        out[int(i)] = cols.take(np.flatnonzero(cols.symbol_idx == i))
    return out
