"""Coinbase frames replayed from a recording of the real ws-feed (cryptofeed's raw format).

Received `match` and `ticker` messages go out on the schedule they arrived, re-timed to start
now; with `shift_times` their `time` moves by the same offset (so they look live), else they
go out byte for byte. Recorded `last_match` messages are the trades before the recording
began: they seed each product's REST tape and answer a new `matches` subscription. Products,
their increments (from the decimals the prices and sizes are printed with) and sequence
numbers come from the recording; heartbeats are made each second from the latest of them.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import msgspec
import numpy as np

from marketpipe.model.records import Trade
from marketpipe.simulator.coinbase import frames
from marketpipe.simulator.coinbase.feed import topic
from marketpipe.simulator.columns import UNITS, TradeColumns
from marketpipe.simulator.feed import Frame
from marketpipe.simulator.formats import iso_us
from marketpipe.simulator.recorded import decimal_units
from marketpipe.simulator.symbols import SymbolSpec, symbol_spec
from marketpipe.simulator.tape import TradeTape, tapes_truth

VENUE = "coinbase"
_decoder = msgspec.json.Decoder(dict[str, object])


def _received(path: Path) -> Iterator[tuple[int, bytes]]:
    """`(receive time µs, raw message)` of the received lines of a cryptofeed recording."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as lines:
        for line in lines:
            head, sep, raw = line.rstrip(b"\r\n").partition(b": ")
            if not sep or b" " in head:
                continue  # a connect or a sent line
            whole, _, frac = head.partition(b".")
            if whole.isdigit():
                yield int(whole) * 1_000_000 + int((frac + b"000000")[:6] or b"0"), raw


def _time_us(text: str) -> int:
    moment = datetime.fromisoformat(text)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def _decimals(text: str) -> int:
    return len(text.partition(".")[2])


@dataclass(slots=True)
class _Product:
    spec: SymbolSpec
    tape: TradeTape
    sequence: int = 0
    last_match: dict[str, object] | None = None  # as recorded (unshifted)
    last_ticker: bytes | None = None


class RecordedCoinbaseFeed:
    """A recording as the Coinbase front's feed; it goes quiet when the recording ends."""

    def __init__(
        self,
        paths: str | Path | list[str | Path],
        shift_times: bool = True,
        speed: float = 1.0,
        heartbeat_every_us: int = 1_000_000,
        lead_in_s: float = 0.0,
    ) -> None:
        """`lead_in_s`: wait this long after the first poll before the first frame, so
        clients can subscribe before the recording starts."""
        sources = [Path(p) for p in (paths if isinstance(paths, list) else [paths])]
        messages: list[tuple[int, dict[str, object], bytes]] = []
        for source in sources:
            for recv_us, raw in _received(source):
                if raw.startswith((b'{"type":"match"', b'{"type":"ticker"', b'{"type":"last_')):
                    messages.append((recv_us, _decoder.decode(raw), raw))
        messages.sort(key=lambda m: m[0])
        trades = [m for m in messages if m[1].get("type") in ("match", "last_match")]
        if not trades:
            raise ValueError(f"no match messages in {', '.join(map(str, sources))}")
        self.shift_times, self.speed = shift_times, speed
        self.heartbeat_every_us = heartbeat_every_us
        self._lead_in_us = round(lead_in_s * 1e6)
        self._shift_us = 0
        self._products = self._products_of(trades)
        for _, body, _ in trades:
            if body["type"] == "last_match":
                self._note_trade(body)
        self._frames = [m for m in messages if m[1].get("type") != "last_match"]
        self._first_trade_us = min(_time_us(str(m[1]["time"])) for m in trades)
        self._origin_us = self._frames[0][0] if self._frames else 0
        self._start_us: int | None = None
        self._next = 0
        self._next_heartbeat_us: int | None = None

    @staticmethod
    def _products_of(trades: list[tuple[int, dict[str, object], bytes]]) -> dict[str, _Product]:
        decimals: dict[str, tuple[int, int]] = {}
        for _, body, _ in trades:
            pid = str(body["product_id"])
            price_dp, size_dp = decimals.get(pid, (0, 0))
            decimals[pid] = (
                max(price_dp, _decimals(str(body["price"]))),
                max(size_dp, _decimals(str(body["size"]))),
            )
        products = {}
        for pid, (price_dp, size_dp) in decimals.items():
            spec = replace(
                symbol_spec(pid),
                native=pid,
                tick_units=UNITS // 10**price_dp,
                step_units=UNITS // 10**size_dp,
            )
            products[pid] = _Product(spec, TradeTape())
        return products

    @property
    def finished(self) -> bool:
        return self._next >= len(self._frames)

    @property
    def specs(self) -> list[SymbolSpec]:
        return [p.spec for p in self._products.values()]

    def spec(self, product_id: str) -> SymbolSpec | None:
        product = self._products.get(product_id)
        return product.spec if product is not None else None

    def tape(self, product_id: str) -> TradeTape | None:
        product = self._products.get(product_id)
        return product.tape if product is not None else None

    def last_match(self, product_id: str) -> bytes | None:
        product = self._products.get(product_id)
        if product is None or product.last_match is None:
            return None
        return self._encode(product.last_match, "last_match")

    def _encode(self, body: dict[str, object], kind: str | None = None) -> bytes:
        out = dict(body)
        if kind is not None:
            out["type"] = kind
        if self._shift_us:
            out["time"] = iso_us(_time_us(str(body["time"])) + self._shift_us)
        return msgspec.json.encode(out)

    def ticker(self, product_id: str) -> bytes | None:
        product = self._products.get(product_id)
        return product.last_ticker if product is not None else None

    def poll(self, now_us: int) -> list[Frame]:
        if self._start_us is None:
            self._start_us = now_us + self._lead_in_us
            self._shift_us = self._start_us - self._first_trade_us if self.shift_times else 0
            for product in self._products.values():  # the trades before the recording too
                product.tape.col("ts_us")[:] += self._shift_us
        due_us = self._origin_us + int((now_us - self._start_us) * self.speed)
        if now_us < self._start_us:
            due_us = -1  # still in the lead-in
        out: list[Frame] = []
        while self._next < len(self._frames) and self._frames[self._next][0] <= due_us:
            _, body, raw = self._frames[self._next]
            self._next += 1
            out.append(self._emit(body, raw))
        if self._next_heartbeat_us is None or now_us >= self._next_heartbeat_us:
            step = self.heartbeat_every_us
            self._next_heartbeat_us = (now_us // step + 1) * step
            for pid, product in self._products.items():
                last = product.tape.last_id or 0
                beat = frames.heartbeat(pid, product.sequence, last, now_us)
                out.append((topic("heartbeat", pid), beat, None))
        return out

    def _emit(self, body: dict[str, object], raw: bytes) -> Frame:
        pid = str(body["product_id"])
        if self._shift_us:
            raw = self._encode(body)
        if body["type"] == "ticker":
            product = self._products.get(pid)
            if product is not None:
                product.last_ticker = raw
            return topic("ticker", pid), raw, None
        return topic("matches", pid), raw, self._note_trade(body)

    def _note_trade(self, body: dict[str, object]) -> tuple[str, int]:
        """Keep a recorded trade (its time shifted) in its product's tape."""
        product = self._products[str(body["product_id"])]
        trade_id = int(str(body["trade_id"]))
        product.sequence = max(product.sequence, int(str(body["sequence"])))
        last = product.tape.last_id
        if last is None or trade_id > last:
            maker_bought = body["side"] == "buy"
            product.tape.append(
                TradeColumns(
                    [product.spec.symbol],
                    np.zeros(1, dtype=np.int64),
                    np.array([trade_id], dtype=np.int64),
                    np.array([decimal_units(str(body["price"]))], dtype=np.int64),
                    np.array([decimal_units(str(body["size"]))], dtype=np.int64),
                    np.array([_time_us(str(body["time"])) + self._shift_us], dtype=np.int64),
                    np.array([maker_bought], dtype=np.bool_),
                    VENUE,
                )
            )
            product.last_match = body
        return product.spec.symbol, trade_id

    def ground_truth(self) -> list[Trade]:
        return tapes_truth({p.spec.symbol: p.tape for p in self._products.values()}, VENUE)
