"""The trades REST serves: per-symbol columns, bounded, with aggregate-trade ids and klines.

Held as numpy arrays (about 48 bytes a trade) and capped per symbol, so a long benchmark
keeps bounded memory; the oldest trades fall off first.
"""

from __future__ import annotations

import numpy as np

from marketpipe.simulator.columns import I64, UNITS

_FIELDS = ("trade_id", "price_units", "qty_units", "time_ms", "maker", "agg_id")


class TradeHistory:
    """One symbol's trades in id order (ids consecutive, so an id is an offset)."""

    def __init__(self, max_trades: int = 1_000_000, first_agg_id: int = 1) -> None:
        self.max_trades = max(1000, max_trades)
        self._cols: dict[str, I64] = {f: np.zeros(1024, dtype=np.int64) for f in _FIELDS}
        self._len = 0
        self._next_agg_id = first_agg_id

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

    def append(
        self, trade_id: I64, price_units: I64, qty_units: I64, time_ms: I64, maker: I64
    ) -> None:
        """Append trades (in id order, continuing the last id)."""
        n = int(trade_id.shape[0])
        if n == 0:
            return
        agg = self._agg_ids(price_units, time_ms, maker)
        self._reserve(n)
        end = self._len + n
        for name, values in zip(
            _FIELDS, (trade_id, price_units, qty_units, time_ms, maker, agg), strict=True
        ):
            self._cols[name][self._len : end] = values
        self._len = end

    def _agg_ids(self, price: I64, time_ms: I64, maker: I64) -> I64:
        # Binance aggregates consecutive fills of one taker order: same time, price and side.
        new_group = np.ones(price.shape[0], dtype=np.bool_)
        new_group[1:] = (
            (price[1:] != price[:-1]) | (time_ms[1:] != time_ms[:-1]) | (maker[1:] != maker[:-1])
        )
        if self._len:
            last = self._len - 1
            new_group[0] = not (
                price[0] == self._cols["price_units"][last]
                and time_ms[0] == self._cols["time_ms"][last]
                and maker[0] == self._cols["maker"][last]
            )
        if not new_group[0]:
            base = int(self._cols["agg_id"][self._len - 1])
        else:
            base = self._next_agg_id - 1
        agg = base + np.cumsum(new_group)
        self._next_agg_id = int(agg[-1]) + 1
        return agg.astype(np.int64)

    def _reserve(self, n: int) -> None:
        need = self._len + n
        capacity = int(self._cols["trade_id"].shape[0])
        if need > self.max_trades:
            # Drop the oldest quarter (or enough for n): amortized, and keeps ids consecutive.
            drop = min(self._len, max(need - self.max_trades, self.max_trades // 4))
            for name, arr in self._cols.items():
                arr[: self._len - drop] = arr[drop : self._len]
                self._cols[name] = arr
            self._len -= drop
            need = self._len + n
        if need > capacity:
            new_cap = max(need, min(self.max_trades, capacity * 2))
            for name, arr in self._cols.items():
                grown = np.zeros(new_cap, dtype=np.int64)
                grown[: self._len] = arr[: self._len]
                self._cols[name] = grown

    # -- queries (return index ranges into the columns) ----------------------------------------

    def index_of_id(self, trade_id: int) -> int:
        """Index of the first trade with id >= trade_id (clamped to what is kept)."""
        first = self.first_id
        if first is None:
            return 0
        return min(max(trade_id - first, 0), self._len)

    def index_of_agg(self, agg_id: int) -> int:
        return int(np.searchsorted(self.col("agg_id"), agg_id, side="left"))

    def index_of_time(self, time_ms: int, side: str = "left") -> int:
        return int(np.searchsorted(self.col("time_ms"), time_ms, side=side))  # type: ignore[call-overload]

    def aggregate(self, start: int, stop: int, limit: int) -> list[dict[str, object]]:
        """Aggregate trades (`a p q f l T m M`) starting in trades `[start, stop)`, at most
        `limit` of them."""
        if start >= stop:
            return []
        all_agg = self.col("agg_id")
        agg = all_agg[start:stop]
        heads = np.flatnonzero(np.concatenate(([True], agg[1:] != agg[:-1])))
        ends = np.append(heads[1:], stop - start)
        heads, ends = heads[:limit], ends[:limit]
        # A group's fills share one time, so only the last group can run past `stop`.
        ends[-1] = int(np.searchsorted(all_agg, agg[heads[-1]], side="right")) - start
        qty = self.col("qty_units")[start : start + int(ends[-1])]
        sums = np.add.reduceat(qty, heads).tolist()
        ids = self.col("trade_id")[start:].tolist()[: int(ends[-1])]
        price = self.col("price_units")[start:stop]
        times = self.col("time_ms")[start:stop]
        maker = self.col("maker")[start:stop]
        return [
            {
                "a": int(agg[h]),
                "p": _fmt(int(price[h])),
                "q": _fmt(int(total)),
                "f": ids[h],
                "l": ids[e - 1],
                "T": int(times[h]),
                "m": bool(maker[h]),
                "M": True,
            }
            for h, e, total in zip(heads.tolist(), ends.tolist(), sums, strict=True)
        ]

    def trades_json(self, start: int, stop: int) -> list[dict[str, object]]:
        """`historicalTrades` / `trades` objects of trades `[start, stop)`."""
        ids = self.col("trade_id")[start:stop].tolist()
        price = self.col("price_units")[start:stop].tolist()
        qty = self.col("qty_units")[start:stop].tolist()
        times = self.col("time_ms")[start:stop].tolist()
        maker = self.col("maker")[start:stop].tolist()
        return [
            {
                "id": i,
                "price": _fmt(p),
                "qty": _fmt(q),
                "quoteQty": _fmt(p * q // UNITS),
                "time": t,
                "isBuyerMaker": bool(m),
                "isBestMatch": True,
            }
            for i, p, q, t, m in zip(ids, price, qty, times, maker, strict=True)
        ]

    def klines(
        self, interval_ms: int, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[list[object]]:
        """Binance's 12-field kline rows of the windows that hold trades."""
        lo = 0 if start_ms is None else self.index_of_time(start_ms - start_ms % interval_ms)
        hi = self._len if end_ms is None else self.index_of_time(end_ms, side="right")
        if lo >= hi:
            return []
        buckets = self.col("time_ms")[lo:hi] // interval_ms
        heads = np.flatnonzero(np.concatenate(([True], buckets[1:] != buckets[:-1])))
        ends = np.append(heads[1:], hi - lo)
        # Without a start time Binance answers the most recent windows.
        keep = slice(-limit, None) if start_ms is None else slice(0, limit)
        heads, ends = heads[keep], ends[keep]
        price = self.col("price_units")[lo:hi].astype(np.float64) / UNITS
        qty = self.col("qty_units")[lo:hi].astype(np.float64) / UNITS
        taker_buy = self.col("maker")[lo:hi] == 0
        rows: list[list[object]] = []
        for h, e in zip(heads.tolist(), ends.tolist(), strict=True):
            p, q, b = price[h:e], qty[h:e], taker_buy[h:e]
            open_time = int(buckets[h]) * interval_ms
            rows.append(
                [
                    open_time,
                    f"{p[0]:.8f}",
                    f"{p.max():.8f}",
                    f"{p.min():.8f}",
                    f"{p[-1]:.8f}",
                    f"{q.sum():.8f}",
                    open_time + interval_ms - 1,
                    f"{float((p * q).sum()):.8f}",
                    e - h,
                    f"{q[b].sum():.8f}",
                    f"{float((p[b] * q[b]).sum()):.8f}",
                    "0",
                ]
            )
        return rows


def _fmt(units: int) -> str:
    return f"{units // UNITS}.{units % UNITS:08d}"
