"""Coinbase frames from a venue's synthetic market: every match, a ticker per product per
tick with trades, and a heartbeat per product each second.

Sequence numbers are per product and, as on the real feed, advance on every order event, so
matches show gaps in them; a ticker carries its trade's sequence, a heartbeat the latest.
The ticker's "24 h" open, high, low and volume are since the market started (a simulated run
is shorter than a day).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from marketpipe.model.records import Trade
from marketpipe.simulator.coinbase import frames
from marketpipe.simulator.columns import TradeColumns
from marketpipe.simulator.feed import Frame
from marketpipe.simulator.formats import decimals_of, fixed, mix64
from marketpipe.simulator.market import SyntheticMarket
from marketpipe.simulator.symbols import SymbolSpec
from marketpipe.simulator.tape import TradeTape, split_by_symbol, tapes_truth

VENUE = "coinbase"


def topic(channel: str, product: str) -> str:
    return f"{channel}:{product}"


class CoinbaseSource(Protocol):
    """What the Coinbase front, its sessions and REST need of a feed (synthetic or recorded)."""

    @property
    def specs(self) -> list[SymbolSpec]: ...

    def spec(self, product_id: str) -> SymbolSpec | None: ...

    def tape(self, product_id: str) -> TradeTape | None: ...

    def poll(self, now_us: int) -> list[Frame]: ...

    def last_match(self, product_id: str) -> bytes | None: ...

    def ticker(self, product_id: str) -> bytes | None: ...

    def ground_truth(self) -> list[Trade]: ...


@dataclass(slots=True)
class _Product:
    spec: SymbolSpec
    tape: TradeTape
    price_dp: int
    size_dp: int
    sequence: int
    open_units: int = 0
    low_units: int = 0
    high_units: int = 0
    volume_units: int = 0
    last_sequence: int = 0  # of the latest match

    def price(self, units: int) -> str:
        return fixed(units, self.price_dp)

    def size(self, units: int) -> str:
        return fixed(units, self.size_dp)


class CoinbaseFeed:
    """Polled by the front with the wall clock, like the Binance feeds."""

    def __init__(
        self,
        market: SyntheticMarket,
        tape_per_symbol: int = 1_000_000,
        heartbeat_every_us: int = 1_000_000,
    ) -> None:
        self.market = market
        self.heartbeat_every_us = heartbeat_every_us
        self._salt = market.seed * 0x9E3779B1 + 1
        rng = np.random.default_rng(market.seed + 17)
        self._products: list[_Product] = [
            _Product(
                spec,
                TradeTape(tape_per_symbol),
                decimals_of(spec.tick_units),
                decimals_of(spec.step_units),
                int(rng.integers(1_000_000_000, 90_000_000_000)),
            )
            for spec in market.specs
        ]
        self._by_id = {p.spec.native: p for p in self._products}
        self._next_heartbeat_us: int | None = None

    @property
    def specs(self) -> list[SymbolSpec]:
        return [p.spec for p in self._products]

    def product_ids(self) -> list[str]:
        return [p.spec.native for p in self._products]

    def tape(self, product_id: str) -> TradeTape | None:
        product = self._by_id.get(product_id)
        return product.tape if product is not None else None

    def spec(self, product_id: str) -> SymbolSpec | None:
        product = self._by_id.get(product_id)
        return product.spec if product is not None else None

    def poll(self, now_us: int) -> list[Frame]:
        out: list[Frame] = []
        cols = self.market.advance_columns(now_us)
        if len(cols):
            parts = split_by_symbol(cols)
            by_trade: list[tuple[int, int, Frame]] = []  # (time, arrival, frame)
            for index, part in parts.items():
                product = self._products[index]
                for frame_at in self._matches(product, part):
                    by_trade.append((frame_at[0], len(by_trade), frame_at[1]))
                product.tape.append(part)
            by_trade.sort(key=lambda f: (f[0], f[1]))  # the market's time order across products
            out.extend(f for _, _, f in by_trade)
            for index in parts:
                ticker = self.ticker_frame(self._products[index])
                if ticker is not None:
                    out.append((topic("ticker", self._products[index].spec.native), ticker, None))
        if self._next_heartbeat_us is None:
            self._next_heartbeat_us = now_us
        if now_us >= self._next_heartbeat_us:
            step = self.heartbeat_every_us
            self._next_heartbeat_us = (now_us // step + 1) * step
            for product in self._products:
                out.append(
                    (
                        topic("heartbeat", product.spec.native),
                        self._heartbeat(product, now_us),
                        None,
                    )
                )
        return out

    def _matches(self, product: _Product, part: TradeColumns) -> list[tuple[int, Frame]]:
        native, symbol, salt = product.spec.native, product.spec.symbol, self._salt
        out: list[tuple[int, Frame]] = []
        seq = product.sequence
        for trade_id, price, qty, ts, maker in zip(
            part.trade_id.tolist(),
            part.price_units.tolist(),
            part.qty_units.tolist(),
            part.ts_us.tolist(),
            part.buyer_maker.tolist(),
            strict=True,
        ):
            seq += 1 + mix64(trade_id) % 4  # other order events come between matches
            if product.open_units == 0:
                product.open_units = product.low_units = product.high_units = price
            product.low_units = min(product.low_units, price)
            product.high_units = max(product.high_units, price)
            product.volume_units += qty
            # buyer_maker: the maker bought, so the maker's side is "buy".
            payload = frames.match(
                "match",
                native,
                trade_id,
                "buy" if maker else "sell",
                product.size(qty),
                product.price(price),
                seq,
                ts,
                salt,
            )
            out.append((ts, (topic("matches", native), payload, (symbol, trade_id))))
        product.sequence = product.last_sequence = seq
        return out

    # -- messages a session sends on subscribing -------------------------------------------------

    def last_match(self, product_id: str) -> bytes | None:
        product = self._by_id.get(product_id)
        if product is None or not len(product.tape):
            return None
        tape, i = product.tape, len(product.tape) - 1
        return frames.match(
            "last_match",
            product.spec.native,
            int(tape.col("trade_id")[i]),
            "buy" if tape.col("buyer_maker")[i] else "sell",
            product.size(int(tape.col("qty_units")[i])),
            product.price(int(tape.col("price_units")[i])),
            product.last_sequence,
            int(tape.col("ts_us")[i]),
            self._salt,
        )

    def ticker(self, product_id: str) -> bytes | None:
        product = self._by_id.get(product_id)
        return None if product is None else self.ticker_frame(product)

    def ticker_frame(self, product: _Product) -> bytes | None:
        tape = product.tape
        if not len(tape):
            return None
        i = len(tape) - 1
        bid, bid_qty, ask, ask_qty = self.market.book_units(product.spec.symbol)
        return frames.ticker(
            product.spec.native,
            product.last_sequence,
            product.price(int(tape.col("price_units")[i])),
            (
                product.price(product.open_units),
                frames.volume_text(product.volume_units),
                product.price(product.low_units),
                product.price(product.high_units),
            ),
            (product.price(bid), product.size(bid_qty), product.price(ask), product.size(ask_qty)),
            "sell" if tape.col("buyer_maker")[i] else "buy",  # the taker's side
            int(tape.col("ts_us")[i]),
            int(tape.col("trade_id")[i]),
            product.size(int(tape.col("qty_units")[i])),
        )

    def _heartbeat(self, product: _Product, now_us: int) -> bytes:
        last = product.tape.last_id
        if last is None:
            last = self.market.next_trade_id(product.spec.symbol) - 1
        return frames.heartbeat(product.spec.native, product.sequence, last, now_us)

    def ground_truth(self) -> list[Trade]:
        return tapes_truth({p.spec.symbol: p.tape for p in self._products}, self.market.exchange)
