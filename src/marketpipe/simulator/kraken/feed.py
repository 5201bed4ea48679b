"""Kraken frames from a venue's synthetic market: trade messages (one per taker order), a
ticker per pair per tick with trades, and a connection heartbeat each second.

The ticker's 24 h statistics (volume, vwap, low, high, change) are since the market started.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from marketpipe.model.records import Trade
from marketpipe.simulator.columns import UNITS, TradeColumns
from marketpipe.simulator.feed import Frame
from marketpipe.simulator.formats import mix64
from marketpipe.simulator.kraken import frames
from marketpipe.simulator.market import SyntheticMarket
from marketpipe.simulator.symbols import SymbolSpec
from marketpipe.simulator.tape import TradeTape, split_by_symbol, tapes_truth

HEARTBEAT_TOPIC = "heartbeat"
SNAPSHOT_TRADES = 50  # what a `snapshot: true` trade subscription sends first


def topic(channel: str, pair: str) -> str:
    return f"{channel}:{pair}"


def ord_type(trade_id: int) -> str:
    """Most takers send market orders; about one in five a marketable limit."""
    return "limit" if mix64(trade_id) % 5 == 0 else "market"


class KrakenSource(Protocol):
    """What the Kraken front, its sessions and REST need of a feed (synthetic or recorded)."""

    @property
    def specs(self) -> list[SymbolSpec]: ...

    def spec(self, ws_name: str) -> SymbolSpec | None: ...

    def tape(self, ws_name: str) -> TradeTape | None: ...

    def poll(self, now_us: int) -> list[Frame]: ...

    def trade_snapshot(self, ws_name: str) -> bytes | None: ...

    def ticker_snapshot(self, ws_name: str) -> bytes | None: ...

    def ground_truth(self) -> list[Trade]: ...


@dataclass(slots=True)
class _Pair:
    spec: SymbolSpec
    tape: TradeTape
    open_units: int = 0
    low_units: int = 0
    high_units: int = 0
    volume_units: int = 0
    notional: float = 0.0  # sum of price * qty, for the vwap


class KrakenFeed:
    def __init__(
        self,
        market: SyntheticMarket,
        tape_per_symbol: int = 1_000_000,
        heartbeat_every_us: int = 1_000_000,
    ) -> None:
        self.market = market
        self.heartbeat_every_us = heartbeat_every_us
        self._pairs = [_Pair(spec, TradeTape(tape_per_symbol)) for spec in market.specs]
        self._by_ws = {p.spec.native: p for p in self._pairs}
        self._next_heartbeat_us: int | None = None

    @property
    def specs(self) -> list[SymbolSpec]:
        return [p.spec for p in self._pairs]

    def spec(self, ws_name: str) -> SymbolSpec | None:
        pair = self._by_ws.get(ws_name)
        return pair.spec if pair is not None else None

    def tape(self, ws_name: str) -> TradeTape | None:
        pair = self._by_ws.get(ws_name)
        return pair.tape if pair is not None else None

    def poll(self, now_us: int) -> list[Frame]:
        out: list[Frame] = []
        cols = self.market.advance_columns(now_us)
        if len(cols):
            parts = split_by_symbol(cols)
            timed: list[tuple[int, int, Frame]] = []
            for index, part in parts.items():
                pair = self._pairs[index]
                for ts, frame in self._trade_messages(pair, part):
                    timed.append((ts, len(timed), frame))
                pair.tape.append(part)
            timed.sort(key=lambda f: (f[0], f[1]))
            out.extend(f for _, _, f in timed)
            for index in parts:
                pair = self._pairs[index]
                out.append((topic("ticker", pair.spec.native), self._ticker(pair, "update"), None))
        if self._next_heartbeat_us is None:
            self._next_heartbeat_us = now_us
        if now_us >= self._next_heartbeat_us:
            step = self.heartbeat_every_us
            self._next_heartbeat_us = (now_us // step + 1) * step
            out.append((HEARTBEAT_TOPIC, frames.HEARTBEAT, None))
        return out

    def _trade_messages(self, pair: _Pair, part: TradeColumns) -> list[tuple[int, Frame]]:
        ws, symbol = pair.spec.native, pair.spec.symbol
        out: list[tuple[int, Frame]] = []
        items: list[str] = []
        first_id = run_ts = -1
        rows = zip(
            part.trade_id.tolist(),
            part.price_units.tolist(),
            part.qty_units.tolist(),
            part.ts_us.tolist(),
            part.buyer_maker.tolist(),
            strict=True,
        )
        for trade_id, price, qty, ts, maker in rows:
            if items and ts != run_ts:  # a new taker order: the last one's message is done
                out.append((run_ts, self._message(ws, symbol, first_id, items)))
                items = []
            if not items:
                first_id, run_ts = trade_id, ts
            side = "sell" if maker else "buy"  # the taker's side
            items.append(frames.trade_item(ws, side, price, qty, ord_type(trade_id), trade_id, ts))
            if pair.open_units == 0:
                pair.open_units = pair.low_units = pair.high_units = price
            pair.low_units = min(pair.low_units, price)
            pair.high_units = max(pair.high_units, price)
            pair.volume_units += qty
            pair.notional += price / UNITS * qty
        if items:
            out.append((run_ts, self._message(ws, symbol, first_id, items)))
        return out

    @staticmethod
    def _message(ws: str, symbol: str, first_id: int, items: list[str]) -> Frame:
        return topic("trade", ws), frames.trade_message("update", items), (symbol, first_id)

    # -- what a session sends on subscribing ------------------------------------------------------

    def trade_snapshot(self, ws_name: str) -> bytes | None:
        pair = self._by_ws.get(ws_name)
        if pair is None:
            return None
        return tape_snapshot(ws_name, pair.tape)

    def ticker_snapshot(self, ws_name: str) -> bytes | None:
        pair = self._by_ws.get(ws_name)
        return None if pair is None else self._ticker(pair, "snapshot")

    def _ticker(self, pair: _Pair, kind: str) -> bytes:
        tape = pair.tape
        book = self.market.book_units(pair.spec.symbol)
        if len(tape):
            last, ts = int(tape.col("price_units")[-1]), int(tape.col("ts_us")[-1])
        else:  # nothing traded yet: the touch stands in for the last price
            last, ts = book[0], self.market.clock_us
        volume = pair.volume_units
        vwap = round(pair.notional / (volume / UNITS) * UNITS) if volume else 0
        tick = pair.spec.tick_units
        vwap = vwap // tick * tick  # printed at the pair's price precision
        stats = (volume, vwap, pair.low_units, pair.high_units, pair.open_units)
        return frames.ticker_message(kind, pair.spec.native, book, last, stats, ts)

    def ground_truth(self) -> list[Trade]:
        return tapes_truth({p.spec.symbol: p.tape for p in self._pairs}, self.market.exchange)


def tape_snapshot(ws_name: str, tape: TradeTape) -> bytes:
    """A v2 trade snapshot of the newest SNAPSHOT_TRADES trades on `tape`."""
    start = max(0, len(tape) - SNAPSHOT_TRADES)
    items = [
        frames.trade_item(ws_name, "sell" if m else "buy", p, q, ord_type(i), i, t)
        for i, p, q, t, m in zip(
            tape.col("trade_id")[start:].tolist(),
            tape.col("price_units")[start:].tolist(),
            tape.col("qty_units")[start:].tolist(),
            tape.col("ts_us")[start:].tolist(),
            tape.col("buyer_maker")[start:].tolist(),
            strict=True,
        )
    ]
    return frames.trade_message("snapshot", items)
