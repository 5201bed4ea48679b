"""The request side of Binance's WebSocket Streams protocol, without any socket.

What a client sends on `/ws` or `/stream` (`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`,
`SET_PROPERTY`, `GET_PROPERTY`) and the replies Binance gives: `{"result": ..., "id": ...}`,
or `{"error": {"code": n, "msg": ...}, "id": ...}` with Binance's codes (0 unknown property,
1 invalid value type, 2 invalid request, 3 invalid JSON) and message wording. Stream names
are checked here too, so a path and a `SUBSCRIBE` accept exactly the same names.
"""

import json
import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from marketpipe.model.intervals import INTERVAL_US
from marketpipe.model.symbols import normalize

METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
CHANNELS = ("trade", "aggTrade", "bookTicker", "ticker", "miniTicker")
KLINE = re.compile(r"kline_(\w+)")
SYMBOL = re.compile(r"[a-z0-9]{2,20}")
REQUEST_ID = re.compile(r"[A-Za-z0-9]{1,36}")  # Binance: alphanumeric, at most 36
MAX_STREAMS = 1024  # per connection, as on Binance
SERVED = (
    "<symbol>@trade, <symbol>@aggTrade, <symbol>@kline_<"
    + "|".join(INTERVAL_US)
    + ">, <symbol>@ticker, <symbol>@miniTicker, <symbol>@bookTicker, alerts"
)


class StreamError(ValueError):
    """A stream name this server cannot serve; the message says why and what it serves."""


def check_stream(name: str) -> str:
    """`name` if it is a stream we serve, else StreamError (Binance's "invalid stream")."""
    if name == "alerts":
        return name
    symbol, at, channel = name.partition("@")
    if not at or SYMBOL.fullmatch(symbol) is None:
        raise StreamError(f"Invalid request: invalid stream {name!r}; streams are {SERVED}")
    kline = KLINE.fullmatch(channel)
    if kline is not None and kline.group(1) not in INTERVAL_US:
        raise StreamError(
            f"Invalid request: invalid stream {name!r}: kline intervals served here are "
            + ", ".join(INTERVAL_US)
        )
    if kline is None and channel not in CHANNELS:
        raise StreamError(f"Invalid request: invalid stream {name!r}; streams are {SERVED}")
    try:
        normalize(symbol)
    except ValueError:
        raise StreamError(f"Invalid request: invalid stream {name!r}: unknown symbol") from None
    return name


def path_streams(segments: list[str]) -> list[str]:
    """The streams named in a `/ws/a/b` path or a `?streams=a/b` query.

    A segment without `@` is a user-data listen key on Binance, which opens the connection
    and carries no market data; clients rely on that (ccxt connects to `/ws/0` and then
    subscribes), so such segments are accepted and serve nothing here. Any other segment must
    be a stream we serve."""
    return [check_stream(s) for s in segments if s and "@" in s]


def error(code: int, msg: str, rid: Any = None, *, with_id: bool = True) -> dict[str, Any]:
    reply: dict[str, Any] = {"error": {"code": code, "msg": msg}}
    if with_id:
        reply["id"] = rid
    return reply


def invalid_json(text: str | bytes) -> str:
    """Binance's code-3 wording: where the JSON broke, as `line L column C`."""
    try:
        json.loads(text)
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError):
            what = exc.msg[:1].lower() + exc.msg[1:]
            return f"Invalid JSON: {what} at line {exc.lineno} column {exc.colno}"
        return f"Invalid JSON: {exc}"
    return "Invalid JSON: malformed message"


@dataclass
class Session:
    """What one connection asked for: its streams, in subscription order, and `combined`."""

    combined: bool
    streams: list[str] = field(default_factory=list)

    def handle(self, text: str | bytes) -> dict[str, Any]:
        """The reply to one request frame; the session changes only when the reply is a
        success."""
        try:
            request = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return error(3, invalid_json(text), with_id=False)
        if not isinstance(request, dict):
            return error(2, "Invalid request: expected a JSON object", with_id=False)
        rid = request.get("id")
        if not _valid_id(rid):
            return error(2, "Invalid request: request ID must be an unsigned integer")
        if "method" not in request:
            return error(2, "Invalid request: missing field `method`", rid)
        method = request["method"]
        if method not in METHODS:
            expected = ", ".join(f"`{m}`" for m in METHODS)
            return error(
                2, f"Invalid request: unknown variant `{method}`, expected one of {expected}", rid
            )
        params = request.get("params", [])
        if not isinstance(params, list):
            return error(2, "Invalid request: `params` must be an array", rid)
        try:
            return {"result": self._apply(method, params), "id": rid}
        except _Reply as exc:
            return error(exc.code, exc.msg, rid)
        except StreamError as exc:
            return error(2, str(exc), rid)

    def _apply(self, method: str, params: list[Any]) -> Any:
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not all(isinstance(p, str) for p in params):
                raise _Reply(2, "Invalid request: stream names must be strings")
            names = [check_stream(p) for p in params]
            if method == "UNSUBSCRIBE":
                self.streams = [s for s in self.streams if s not in names]
                return None
            new = [n for n in dict.fromkeys(names) if n not in self.streams]
            if len(self.streams) + len(new) > MAX_STREAMS:
                raise _Reply(2, f"Invalid request: at most {MAX_STREAMS} streams a connection")
            self.streams.extend(new)
            return None
        if method == "LIST_SUBSCRIPTIONS":
            if params:
                raise _Reply(2, "Invalid request: too many parameters")
            return list(self.streams)
        # SET_PROPERTY / GET_PROPERTY
        if not params or not isinstance(params[0], str):
            raise _Reply(2, "Invalid request: property name must be a string")
        if params[0] != "combined":
            raise _Reply(0, "Unknown property")
        if method == "GET_PROPERTY":
            if len(params) > 1:
                raise _Reply(2, "Invalid request: too many parameters")
            return self.combined
        if len(params) > 2:
            raise _Reply(2, "Invalid request: too many parameters")
        if len(params) < 2 or not isinstance(params[1], bool):
            raise _Reply(1, "Invalid value type: expected Boolean")
        self.combined = params[1]
        return None


class _Reply(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def _valid_id(rid: Any) -> bool:
    # Binance takes a 64-bit signed integer, an alphanumeric string of at most 36, or null.
    if rid is None:
        return True
    if isinstance(rid, bool):
        return False
    if isinstance(rid, int):
        return -(2**63) <= rid < 2**63
    return isinstance(rid, str) and REQUEST_ID.fullmatch(rid) is not None


def time_unit(value: str | None) -> bool:
    """True for microseconds. `?timeUnit=` takes MILLISECOND or MICROSECOND (any case), as
    Binance does; anything else is a StreamError naming the choices."""
    if value is None or value.upper() == "MILLISECOND":
        return False
    if value.upper() == "MICROSECOND":
        return True
    raise StreamError(f"Invalid request: timeUnit {value!r}: expected MILLISECOND or MICROSECOND")
