"""Where the exchange's frames and REST history come from: a synthetic market or a recording.

A Feed is polled with the wall clock and answers the frames due by then, already encoded
(the exchange only routes and sends bytes), and keeps the trade history REST serves.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from marketpipe.model.records import Trade
from marketpipe.model.symbols import normalize
from marketpipe.simulator.columns import EXCHANGE, TradeColumns
from marketpipe.simulator.history import TradeHistory
from marketpipe.simulator.market import SyntheticMarket
from marketpipe.simulator.symbols import SymbolSpec
from marketpipe.simulator.wire import book_ticker_payload, stream_name, trade_payload

# (stream name, raw payload, (normalized symbol, trade id) for trade frames else None)
Frame = tuple[str, bytes, tuple[str, int] | None]


class Feed(Protocol):
    @property
    def specs(self) -> list[SymbolSpec]: ...

    def poll(self, now_us: int) -> list[Frame]:
        """Frames due at `now_us` (wall clock, µs) not returned before, in send order."""
        ...

    def history(self, symbol: str) -> TradeHistory | None: ...

    def book_units(self, symbol: str) -> tuple[int, int, int, int]:
        """Best `(bid, bid_qty, ask, ask_qty)` in 1e-8 units."""
        ...

    def last_update_id(self, symbol: str) -> int: ...


def ground_truth_of(histories: dict[str, TradeHistory], exchange: str = EXCHANGE) -> list[Trade]:
    """All kept trades of `histories`, ordered by `(ts_event, symbol, trade_id)`."""
    symbols = list(histories)
    parts = []
    for i, h in enumerate(histories.values()):
        n = len(h)
        parts.append(
            TradeColumns(
                symbols,
                np.full(n, i, dtype=np.int64),
                h.col("trade_id").copy(),
                h.col("price_units").copy(),
                h.col("qty_units").copy(),
                h.col("time_ms") * 1000,
                h.col("maker").astype(np.bool_),
                exchange,
            )
        )
    merged = TradeColumns.concat(parts, symbols, exchange)
    order = np.lexsort((merged.trade_id, merged.symbol_idx, merged.ts_us))
    return merged.take(order).to_trades()


class SyntheticFeed:
    """Frames from a SyntheticMarket: every trade, and a bookTicker per symbol per tick."""

    def __init__(
        self, market: SyntheticMarket, history_per_symbol: int = 1_000_000, book_ticker: bool = True
    ) -> None:
        self.market = market
        self.book_ticker = book_ticker
        self._specs = market.specs
        self._histories = {
            s.symbol: TradeHistory(
                history_per_symbol, first_agg_id=market.next_trade_id(s.symbol) // 3
            )
            for s in self._specs
        }
        self._streams = [stream_name(s.native, "trade") for s in self._specs]
        self._book_streams = [stream_name(s.native, "bookTicker") for s in self._specs]
        self._update_ids: dict[str, int] = {}

    @property
    def specs(self) -> list[SymbolSpec]:
        return self._specs

    def history(self, symbol: str) -> TradeHistory | None:
        return self._histories.get(normalize(symbol))

    def histories(self) -> dict[str, TradeHistory]:
        return self._histories

    def book_units(self, symbol: str) -> tuple[int, int, int, int]:
        return self.market.book_units(symbol)

    def last_update_id(self, symbol: str) -> int:
        normalized = normalize(symbol)
        if normalized not in self._update_ids:
            self._update_ids[normalized] = self.market.book_update_id(normalized)
        return self._update_ids[normalized]

    def poll(self, now_us: int) -> list[Frame]:
        cols = self.market.advance_columns(now_us)
        if not len(cols):
            return []
        e_ms = now_us // 1000
        t_ms = cols.ts_us // 1000
        maker = cols.buyer_maker.astype(np.int64)
        present = np.unique(cols.symbol_idx).tolist()
        for i in present:
            sel = cols.symbol_idx == i
            self._histories[self._specs[i].symbol].append(
                cols.trade_id[sel],
                cols.price_units[sel],
                cols.qty_units[sel],
                t_ms[sel],
                maker[sel],
            )
        specs, streams = self._specs, self._streams
        frames: list[Frame] = [
            (
                streams[s],
                trade_payload(specs[s].native, t, p, q, tm, e_ms, bool(m)),
                (specs[s].symbol, t),
            )
            for s, t, p, q, tm, m in zip(
                cols.symbol_idx.tolist(),
                cols.trade_id.tolist(),
                cols.price_units.tolist(),
                cols.qty_units.tolist(),
                t_ms.tolist(),
                maker.tolist(),
                strict=True,
            )
        ]
        if self.book_ticker:
            for i in present:
                spec = specs[i]
                update_id = self.market.book_update_id(spec.symbol)
                self._update_ids[spec.symbol] = update_id
                bid, bid_qty, ask, ask_qty = self.market.book_units(spec.symbol)
                payload = book_ticker_payload(spec.native, update_id, bid, bid_qty, ask, ask_qty)
                frames.append((self._book_streams[i], payload, None))
        return frames

    def ground_truth(self) -> list[Trade]:
        return ground_truth_of(self._histories, self.market.exchange)
