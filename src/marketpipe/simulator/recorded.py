"""A feed that replays recorded Binance frames (`<recv_ns> <json>` lines, plain or gzipped).

Frames go out on the schedule they were received, re-timed to start now. With
`shift_times`, their `E`/`T` fields move by the same offset, so the trades look live; else
payloads go out byte for byte. Trades become REST history as they are sent.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from pathlib import Path

import msgspec
import numpy as np

from marketpipe.model.records import Trade
from marketpipe.model.symbols import normalize
from marketpipe.simulator.columns import UNITS
from marketpipe.simulator.feed import Frame, ground_truth_of
from marketpipe.simulator.history import TradeHistory
from marketpipe.simulator.symbols import SymbolSpec, symbol_spec

_COMBINED_PREFIX = b'{"stream":"'
_DATA_KEY = b'","data":'
_decoder = msgspec.json.Decoder(dict[str, object])


class _TradeFields(msgspec.Struct):
    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool


class _BookFields(msgspec.Struct):
    s: str
    b: str
    B: str
    a: str
    A: str
    u: int = 0


_trade_decoder = msgspec.json.Decoder(_TradeFields)
_book_decoder = msgspec.json.Decoder(_BookFields)


def decimal_units(text: str) -> int:
    """`"61837.63000000"` -> 6183763000000, exactly."""
    whole, _, frac = text.partition(".")
    return int(whole or "0") * UNITS + int((frac + "00000000")[:8])


def read_recording(path: str | Path) -> Iterable[tuple[int, bytes]]:
    """`(recv_ns, frame)` of each stream line; other lines (REST snapshots) are skipped."""
    target = Path(path)
    opener = gzip.open if target.suffix == ".gz" else open
    with opener(target, "rb") as lines:
        for line in lines:
            stamp, _, frame = line.rstrip(b"\r\n").partition(b" ")
            if stamp.isdigit() and frame.startswith((_COMBINED_PREFIX, b'{"e":')):
                yield int(stamp), frame


def split_frame(frame: bytes) -> tuple[str, bytes] | None:
    """A recorded frame into `(stream, raw payload)`; raw `/ws` payloads get their stream
    name from `e`/`s`."""
    if frame.startswith(_COMBINED_PREFIX):
        end = frame.find(_DATA_KEY)
        if end < 0:
            return None
        return frame[len(_COMBINED_PREFIX) : end].decode(), frame[end + len(_DATA_KEY) : -1]
    body = _decoder.decode(frame)
    event, symbol = body.get("e"), body.get("s")
    if isinstance(event, str) and isinstance(symbol, str):
        return f"{symbol.lower()}@{event}", frame
    return None


class RecordedFeed:
    """Replays recordings as a Feed; it goes quiet when they run out."""

    def __init__(
        self,
        paths: str | Path | list[str | Path],
        shift_times: bool = True,
        speed: float = 1.0,
        history_per_symbol: int = 1_000_000,
    ) -> None:
        sources = paths if isinstance(paths, list) else [paths]
        frames: list[tuple[int, str, bytes]] = []
        for source in sources:
            for recv_ns, raw in read_recording(source):
                parts = split_frame(raw)
                if parts is not None:
                    frames.append((recv_ns, parts[0], parts[1]))
        frames.sort(key=lambda f: f[0])  # stable: equal stamps keep file order
        if not frames:
            raise ValueError(f"no stream frames in {', '.join(map(str, sources))}")
        self._frames = frames
        self._next = 0
        self.shift_times = shift_times
        self.speed = speed
        self._origin_ns = frames[0][0]
        self._start_us: int | None = None
        natives = sorted({s.partition("@")[0].upper() for _, s, _ in frames})
        self._specs = [symbol_spec(n) for n in natives]
        self._by_native = {s.native: s for s in self._specs}
        self._histories = {s.symbol: TradeHistory(history_per_symbol) for s in self._specs}
        self._books: dict[str, tuple[int, int, int, int]] = {}
        self._update_ids: dict[str, int] = {}
        self._shift_ms = 0

    @property
    def specs(self) -> list[SymbolSpec]:
        return self._specs

    @property
    def finished(self) -> bool:
        return self._next >= len(self._frames)

    def history(self, symbol: str) -> TradeHistory | None:
        return self._histories.get(normalize(symbol))

    def histories(self) -> dict[str, TradeHistory]:
        return self._histories

    def book_units(self, symbol: str) -> tuple[int, int, int, int]:
        normalized = normalize(symbol)
        if normalized in self._books:
            return self._books[normalized]
        h = self._histories.get(normalized)
        spec = symbol_spec(normalized)
        last = (
            int(h.col("price_units")[-1])
            if h is not None and len(h)
            else decimal_units(f"{spec.start_price:.8f}")
        )
        return last, spec.step_units * 100, last + spec.tick_units, spec.step_units * 100

    def last_update_id(self, symbol: str) -> int:
        return self._update_ids.get(normalize(symbol), 1)

    def poll(self, now_us: int) -> list[Frame]:
        if self._start_us is None:
            self._start_us = now_us
            first_ms = self._first_trade_ms()
            self._shift_ms = (now_us // 1000 - first_ms) if self.shift_times and first_ms else 0
        due_ns = self._origin_ns + int((now_us - self._start_us) * 1000 * self.speed)
        out: list[Frame] = []
        frames, i = self._frames, self._next
        while i < len(frames) and frames[i][0] <= due_ns:
            _, stream, payload = frames[i]
            out.append(self._emit(stream, payload))
            i += 1
        self._next = i
        return out

    def _first_trade_ms(self) -> int:
        for _, stream, payload in self._frames:
            if stream.endswith("@trade"):
                return _trade_decoder.decode(payload).T
        return 0

    def _emit(self, stream: str, payload: bytes) -> Frame:
        kind = stream.partition("@")[2]
        if kind == "trade":
            fields = _trade_decoder.decode(payload)
            spec = self._by_native[fields.s]
            if self._shift_ms:
                body = _decoder.decode(payload)
                body["T"] = fields.T + self._shift_ms
                if isinstance(body.get("E"), int):
                    body["E"] = int(body["E"]) + self._shift_ms  # type: ignore[call-overload]
                payload = msgspec.json.encode(body)
            history = self._histories[spec.symbol]
            if history.last_id is None or fields.t > history.last_id:
                history.append(
                    np.array([fields.t], dtype=np.int64),
                    np.array([decimal_units(fields.p)], dtype=np.int64),
                    np.array([decimal_units(fields.q)], dtype=np.int64),
                    np.array([fields.T + self._shift_ms], dtype=np.int64),
                    np.array([int(fields.m)], dtype=np.int64),
                )
            return stream, payload, (spec.symbol, fields.t)
        if kind == "bookTicker":
            book = _book_decoder.decode(payload)
            symbol = normalize(book.s)
            self._books[symbol] = (
                decimal_units(book.b),
                decimal_units(book.B),
                decimal_units(book.a),
                decimal_units(book.A),
            )
            self._update_ids[symbol] = book.u
        return stream, payload, None

    def ground_truth(self) -> list[Trade]:
        """Trades sent so far (as REST knows them)."""
        return ground_truth_of(self._histories)
