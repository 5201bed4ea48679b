"""Binance spot stream frames parsed into records at the edge (msgspec, typed).

Handles combined-stream frames (`{"stream": ..., "data": ...}`) and raw `/ws` frames alike.
Anything that is not a valid trade or bookTicker raises FrameError; control frames
(subscription results, serverShutdown) are reported as such so the connector can act.
"""

import math

import msgspec

from marketpipe.model.errors import FrameError
from marketpipe.model.records import Quote, Trade
from marketpipe.model.symbols import SymbolMap
from marketpipe.sources.venue import Control

EXCHANGE = "binance"


class TradePayload(msgspec.Struct):
    """`<symbol>@trade` payload; prices and quantities arrive as decimal strings."""

    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool
    e: str = "trade"
    E: int = 0


class BookTickerPayload(msgspec.Struct):
    """`<symbol>@bookTicker` payload (spot has no event time)."""

    s: str
    b: str
    B: str
    a: str
    A: str
    u: int = 0


_any_decoder = msgspec.json.Decoder(dict[str, object])
_trade_decoder = msgspec.json.Decoder(TradePayload)
_book_decoder = msgspec.json.Decoder(BookTickerPayload)


def _positive(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FrameError(f"{name} {text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise FrameError(f"{name} {text!r} is not a positive finite number")
    return value


# Stored as int64: trade ids below 2**63, and the trade time in µs (ms * 1000) too.
_MAX_TRADE_ID = 2**63 - 1
_MAX_TIME_MS = (2**63 - 1) // 1000


def trade_from_payload(payload: TradePayload, symbols: SymbolMap, recv_us: int) -> Trade:
    if not (0 <= payload.t <= _MAX_TRADE_ID and 0 < payload.T <= _MAX_TIME_MS):
        raise FrameError(f"trade id {payload.t} or time {payload.T} out of range")
    return Trade(
        exchange=EXCHANGE,
        symbol=symbols.normalize(payload.s),
        trade_id=payload.t,
        price=_positive(payload.p, "price"),
        qty=_positive(payload.q, "qty"),
        side="sell" if payload.m else "buy",
        ts_event=payload.T * 1000,
        ts_recv=recv_us,
    )


def quote_from_payload(payload: BookTickerPayload, symbols: SymbolMap, recv_us: int) -> Quote:
    return Quote(
        exchange=EXCHANGE,
        symbol=symbols.normalize(payload.s),
        bid=_positive(payload.b, "bid"),
        bid_qty=float(payload.B),
        ask=_positive(payload.a, "ask"),
        ask_qty=float(payload.A),
        ts_event=recv_us,
        ts_recv=recv_us,
    )


def _stream_kind(stream: str) -> str:
    _, _, kind = stream.partition("@")
    return kind


def parse_frame(raw: bytes | str, symbols: SymbolMap, recv_us: int) -> Trade | Quote | Control:
    """Parse one stream frame. Raises FrameError on anything malformed."""
    try:
        body = _any_decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise FrameError(f"not a JSON object: {exc}") from None
    stream = body.get("stream")
    data = body.get("data", body) if stream is not None else body
    if not isinstance(data, dict):
        raise FrameError("frame 'data' is not an object")
    try:
        if isinstance(stream, str):
            kind = _stream_kind(stream)
            if kind == "trade":
                return trade_from_payload(msgspec.convert(data, TradePayload), symbols, recv_us)
            if kind == "bookTicker":
                return quote_from_payload(
                    msgspec.convert(data, BookTickerPayload), symbols, recv_us
                )
            raise FrameError(f"unsupported stream {stream!r}")
        event = data.get("e")
        if event == "trade":
            return trade_from_payload(msgspec.convert(data, TradePayload), symbols, recv_us)
        if event == "serverShutdown":
            return Control("server_shutdown", data)
        if event is None and {"b", "a", "s", "B", "A"} <= data.keys():
            return quote_from_payload(msgspec.convert(data, BookTickerPayload), symbols, recv_us)
        if "result" in data and "id" in data:
            return Control("result", data)
        if "error" in data or ("code" in data and "msg" in data):
            return Control("error", data)
    except msgspec.ValidationError as exc:
        raise FrameError(f"invalid payload: {exc}") from None
    except ValueError as exc:  # a symbol that cannot be normalized
        raise FrameError(str(exc)) from None
    raise FrameError(f"unrecognized frame with keys {sorted(data)[:8]}")
