"""Kraken trades replayed from a recording of the real WebSocket v1 feed (cryptofeed's format).

The recording speaks v1 (`[channel, [[price, volume, time, side, type, misc], ...], "trade",
pair]`, `side` the taker's, no trade ids); the front speaks v2, so each recorded message goes
out as one v2 `trade` update on the schedule it arrived, re-timed to start now, and each fill
gets the sequential per-pair `trade_id` v2 has (1, 2, ...). With `shift_times` trade times
move by the same offset (so they look live). The same trades fill each pair's REST tape.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import msgspec
import numpy as np

from marketpipe.model.records import Trade
from marketpipe.simulator.columns import UNITS, TradeColumns
from marketpipe.simulator.feed import Frame
from marketpipe.simulator.kraken import frames
from marketpipe.simulator.kraken.feed import HEARTBEAT_TOPIC, ord_type, tape_snapshot, topic
from marketpipe.simulator.recorded import decimal_units
from marketpipe.simulator.symbols import SymbolSpec, symbol_spec
from marketpipe.simulator.tape import TradeTape, tapes_truth

VENUE = "kraken"
_decoder = msgspec.json.Decoder()

# (price, volume, time, taker side) of a v1 fill `[price, volume, time, side, type, misc]`
_Fill = tuple[str, str, str, str]


def _v2_name(v1_pair: str) -> str:
    """v1 prints Bitcoin as `XBT`; v2 as `BTC`."""
    return "/".join("BTC" if part == "XBT" else part for part in v1_pair.split("/"))


def _seconds_us(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 1_000_000 + int((frac + "000000")[:6])


def _decimals(text: str) -> int:
    return len(text.partition(".")[2])


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


def _trade_messages(sources: list[Path]) -> list[tuple[int, str, list[_Fill]]]:
    """`(receive time µs, v2 pair, fills)` of each recorded v1 trade message, by receive time."""
    out: list[tuple[int, str, list[_Fill]]] = []
    for source in sources:
        for recv_us, raw in _received(source):
            if not raw.startswith(b"[") or b'"trade"' not in raw:
                continue
            body = _decoder.decode(raw)
            if len(body) == 4 and body[2] == "trade" and isinstance(body[1], list):
                fills = [(str(f[0]), str(f[1]), str(f[2]), str(f[3])) for f in body[1]]
                out.append((recv_us, _v2_name(str(body[3])), fills))
    out.sort(key=lambda m: m[0])
    return out


@dataclass(slots=True)
class _Pair:
    spec: SymbolSpec
    tape: TradeTape
    next_id: int = 1


class RecordedKrakenFeed:
    """A recording as the Kraken front's feed; it goes quiet when the recording ends."""

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
        self._messages = _trade_messages(sources)
        if not self._messages:
            raise ValueError(f"no trade messages in {', '.join(map(str, sources))}")
        self.shift_times, self.speed = shift_times, speed
        self.heartbeat_every_us = heartbeat_every_us
        self._lead_in_us = round(lead_in_s * 1e6)
        self._shift_us = 0
        self._pairs = self._pairs_of(self._messages)
        self._first_trade_us = min(_seconds_us(f[2]) for m in self._messages for f in m[2])
        self._origin_us = self._messages[0][0]
        self._start_us: int | None = None
        self._next = 0
        self._next_heartbeat_us: int | None = None

    @staticmethod
    def _pairs_of(messages: list[tuple[int, str, list[_Fill]]]) -> dict[str, _Pair]:
        decimals: dict[str, tuple[int, int]] = {}
        for _, pair, fills in messages:
            for fill in fills:
                price_dp, size_dp = decimals.get(pair, (0, 0))
                decimals[pair] = (
                    max(price_dp, _decimals(fill[0])),
                    max(size_dp, _decimals(fill[1])),
                )
        pairs = {}
        for pair, (price_dp, size_dp) in decimals.items():
            spec = replace(
                symbol_spec(pair.replace("/", "-")),
                native=pair,
                tick_units=UNITS // 10 ** min(price_dp, 8),
                step_units=UNITS // 10 ** min(size_dp, 8),
            )
            pairs[pair] = _Pair(spec, TradeTape())
        return pairs

    @property
    def finished(self) -> bool:
        return self._next >= len(self._messages)

    @property
    def specs(self) -> list[SymbolSpec]:
        return [p.spec for p in self._pairs.values()]

    def spec(self, ws_name: str) -> SymbolSpec | None:
        pair = self._pairs.get(ws_name)
        return pair.spec if pair is not None else None

    def tape(self, ws_name: str) -> TradeTape | None:
        pair = self._pairs.get(ws_name)
        return pair.tape if pair is not None else None

    def trade_snapshot(self, ws_name: str) -> bytes | None:
        """The trades sent so far (at most the last 50), as a v2 snapshot."""
        pair = self._pairs.get(ws_name)
        return None if pair is None else tape_snapshot(ws_name, pair.tape)

    def ticker_snapshot(self, ws_name: str) -> bytes | None:
        return None  # the recording holds no tickers

    def poll(self, now_us: int) -> list[Frame]:
        if self._start_us is None:
            self._start_us = now_us + self._lead_in_us
            self._shift_us = self._start_us - self._first_trade_us if self.shift_times else 0
        due_us = self._origin_us + int((now_us - self._start_us) * self.speed)
        if now_us < self._start_us:
            due_us = -1  # still in the lead-in
        out: list[Frame] = []
        while self._next < len(self._messages) and self._messages[self._next][0] <= due_us:
            _, pair, fills = self._messages[self._next]
            self._next += 1
            out.append(self._emit(self._pairs[pair], fills))
        if self._next_heartbeat_us is None or now_us >= self._next_heartbeat_us:
            step = self.heartbeat_every_us
            self._next_heartbeat_us = (now_us // step + 1) * step
            out.append((HEARTBEAT_TOPIC, frames.HEARTBEAT, None))
        return out

    def _emit(self, pair: _Pair, fills: list[_Fill]) -> Frame:
        """One recorded message as one v2 update; its fills are kept in the pair's tape."""
        first_id = pair.next_id
        items: list[str] = []
        for price_text, qty_text, time_text, side in fills:
            trade_id, price, qty = pair.next_id, decimal_units(price_text), decimal_units(qty_text)
            ts = _seconds_us(time_text) + self._shift_us
            taker = "sell" if side == "s" else "buy"
            items.append(
                frames.trade_item(
                    pair.spec.native, taker, price, qty, ord_type(trade_id), trade_id, ts
                )
            )
            pair.tape.append(
                TradeColumns(
                    [pair.spec.symbol],
                    np.zeros(1, dtype=np.int64),
                    np.array([trade_id], dtype=np.int64),
                    np.array([price], dtype=np.int64),
                    np.array([qty], dtype=np.int64),
                    np.array([ts], dtype=np.int64),
                    np.array([side == "s"], dtype=np.bool_),  # a taker sell hits a buyer
                    VENUE,
                )
            )
            pair.next_id += 1
        message = frames.trade_message("update", items)
        return topic("trade", pair.spec.native), message, (pair.spec.symbol, first_id)

    def ground_truth(self) -> list[Trade]:
        return tapes_truth({p.spec.symbol: p.tape for p in self._pairs.values()}, VENUE)
