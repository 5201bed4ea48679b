"""Kraken WebSocket frames parsed into records at the edge (msgspec, typed).

Two protocol versions:
- **v2** (what we connect to): JSON objects. `trade` frames carry a list of trades with a
  `trade_id` that is sequential per pair and `side` = the taker's side; `ticker` frames carry
  the best bid and offer; `heartbeat`, `status` and method replies (`subscribe` acks, `pong`)
  are control frames. A failed ack (`"success": false`) is a Control "error".
- **v1** (our recordings): arrays `[channelID, payload, channelName, pair]` and `{"event": ...}`
  objects. v1 trades have no id: each gets an arrival key (`ArrivalKeys`). Book and other
  channels we do not ingest are Control "other", never dead letters.

Anything else raises FrameError, and the connector dead-letters it.
"""

import math
import re
from datetime import UTC, datetime
from typing import Final, Literal

import msgspec

from marketpipe.model.errors import FrameError
from marketpipe.model.records import Quote, Side, Trade
from marketpipe.sources.kraken.symbols import from_ws
from marketpipe.sources.venue import Control, Parsed

EXCHANGE: Final = "kraken"
MAX_INT64: Final = 2**63 - 1
# v1 channels that are valid Kraken data we do not turn into records.
V1_OTHER_CHANNELS: Final = ("book", "spread", "ohlc")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:Z|\+00:00)\Z"
)
_SECONDS = re.compile(r"(\d{1,12})(?:\.(\d{1,9}))?\Z")


class V2Trade(msgspec.Struct):
    symbol: str
    side: Literal["buy", "sell"]
    price: float
    qty: float
    trade_id: int
    timestamp: str
    ord_type: str = ""


class V2Ticker(msgspec.Struct):
    symbol: str
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float
    timestamp: str | None = None  # newer servers send it; older ones do not


class V1Ticker(msgspec.Struct):
    """v1 ticker: `[price, whole lot volume, lot volume]` for the best ask and bid."""

    a: tuple[str, int | str, str]
    b: tuple[str, int | str, str]


_object_decoder = msgspec.json.Decoder(dict[str, object])
_array_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_str_decoder = msgspec.json.Decoder(str)
_v1_trades_decoder = msgspec.json.Decoder(list[list[str]])
_v1_ticker_decoder = msgspec.json.Decoder(V1Ticker)


class ArrivalKeys:
    """Trade keys for id-less (v1) trades: `recv_us * 1000 + slot`.

    The slot numbers the trades received in the same microsecond, in arrival order: a frame's
    trades take consecutive slots by their position in its array, and a second frame in the
    same microsecond continues after them. So two real trades never share a key, even with
    equal price, size and time. A frame seen again with the same bytes and the same receive
    time (the same recording replayed) gets its first keys back, so a replay never stores a
    trade twice. Keys are about 1.6e18, far above any real v2 trade id (~1e8), so the two
    never meet. Fits int64 until the year 2262.
    """

    SLOTS: Final = 1000

    def __init__(self, remember: int = 65_536) -> None:
        self._remember = remember
        self._first: dict[tuple[int, bytes], int] = {}  # (recv_us, frame) -> its first key
        self._used: dict[int, int] = {}  # recv_us -> slots taken

    def first_key(self, recv_us: int, raw: bytes, count: int) -> int:
        seen = self._first.get((recv_us, raw))
        if seen is not None:
            return seen
        if not 0 <= recv_us <= MAX_INT64 // self.SLOTS - 1:
            raise FrameError(f"receive time {recv_us} µs cannot key a trade")
        slot = self._used.get(recv_us, 0)
        if slot + count > self.SLOTS:
            raise FrameError(f"more than {self.SLOTS} trades received in one microsecond")
        self._used[recv_us] = slot + count
        key = recv_us * self.SLOTS + slot
        self._first[(recv_us, bytes(raw))] = key
        if len(self._first) > self._remember:  # forget the oldest half; replays run in order
            for old in list(self._first)[: self._remember // 2]:
                del self._first[old]
                self._used.pop(old[0], None)
        return key


def _positive(value: float, name: str) -> float:
    if not math.isfinite(value) or value <= 0:
        raise FrameError(f"{name} {value!r} is not a positive finite number")
    return value


def _non_negative(value: float, name: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise FrameError(f"{name} {value!r} is not a non-negative finite number")
    return value


def _decimal(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise FrameError(f"{name} {text!r} is not a number") from None


def _fraction_us(frac: str | None) -> int:
    return int((frac or "").ljust(6, "0")[:6])  # truncated to the microsecond


def rfc3339_us(text: str) -> int:
    """`2022-12-25T09:30:59.123456Z` as µs since the epoch, exactly; FrameError otherwise."""
    match = _RFC3339.match(text)
    if match is None:
        raise FrameError(f"timestamp {text!r} is not RFC 3339 UTC")
    year, month, day, hour, minute, second, frac = match.groups()
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC
        )
    except ValueError:
        raise FrameError(f"timestamp {text!r} is not a valid time") from None
    whole = moment - datetime(1970, 1, 1, tzinfo=UTC)
    us = (whole.days * 86_400 + whole.seconds) * 1_000_000 + _fraction_us(frac)
    if us <= 0:
        raise FrameError(f"timestamp {text!r} is not after the epoch")
    return us


def seconds_us(text: str) -> int:
    """v1's `"1618678142.557535"` (seconds since the epoch) as µs; FrameError otherwise."""
    match = _SECONDS.match(text)
    if match is None:
        raise FrameError(f"time {text!r} is not seconds since the epoch")
    us = int(match.group(1)) * 1_000_000 + _fraction_us(match.group(2))
    if us <= 0:
        raise FrameError(f"time {text!r} is not after the epoch")
    return us


def _symbol(pair: str) -> str:
    try:
        return from_ws(pair)
    except ValueError as exc:
        raise FrameError(str(exc)) from None


# -- v2 ---------------------------------------------------------------------------------


def v2_trade(row: V2Trade, recv_us: int) -> Trade:
    if not 0 <= row.trade_id <= MAX_INT64:
        raise FrameError(f"trade id {row.trade_id} out of range")
    return Trade(
        exchange=EXCHANGE,
        symbol=_symbol(row.symbol),
        trade_id=row.trade_id,
        price=_positive(row.price, "price"),
        qty=_positive(row.qty, "qty"),
        side=row.side,  # v2 names the taker's side
        ts_event=rfc3339_us(row.timestamp),
        ts_recv=recv_us,
    )


def v2_quote(row: V2Ticker, recv_us: int) -> Quote:
    return Quote(
        exchange=EXCHANGE,
        symbol=_symbol(row.symbol),
        bid=_positive(row.bid, "bid"),
        bid_qty=_non_negative(row.bid_qty, "bid_qty"),
        ask=_positive(row.ask, "ask"),
        ask_qty=_non_negative(row.ask_qty, "ask_qty"),
        ts_event=rfc3339_us(row.timestamp) if row.timestamp is not None else recv_us,
        ts_recv=recv_us,
    )


def _v2_object(body: dict[str, object], recv_us: int) -> list[Parsed]:
    method = body.get("method")
    if isinstance(method, str):
        if method == "pong":
            return [Control("heartbeat", body)]
        return [Control("result" if body.get("success") is True else "error", body)]
    channel = body.get("channel")
    if channel == "heartbeat":
        return [Control("heartbeat", body)]
    if channel == "status":
        return [Control("other", body)]
    data = body.get("data")
    if not isinstance(data, list):
        raise FrameError(f"{channel!r} frame has no 'data' list")
    try:
        if channel == "trade":
            rows = msgspec.convert(data, list[V2Trade])
            return [v2_trade(row, recv_us) for row in rows]
        if channel == "ticker":
            quotes = msgspec.convert(data, list[V2Ticker])
            return [v2_quote(row, recv_us) for row in quotes]
    except msgspec.ValidationError as exc:
        raise FrameError(f"invalid {channel} payload: {exc}") from None
    raise FrameError(f"unsupported channel {channel!r}")


# -- v1 ---------------------------------------------------------------------------------

_V1_EVENT_KINDS: Final[dict[str, Literal["heartbeat", "other"]]] = {
    "heartbeat": "heartbeat",
    "pong": "heartbeat",
    "systemStatus": "other",
}


def _v1_event(body: dict[str, object]) -> list[Parsed]:
    event = body.get("event")
    if event == "subscriptionStatus":
        return [Control("error" if body.get("status") == "error" else "result", body)]
    if event == "error":
        return [Control("error", body)]
    if isinstance(event, str) and event in _V1_EVENT_KINDS:
        return [Control(_V1_EVENT_KINDS[event], body)]
    raise FrameError(f"unsupported event {event!r}")


def _v1_trades(
    payload: msgspec.Raw, pair: str, raw: bytes, recv_us: int, keys: ArrivalKeys
) -> list[Parsed]:
    symbol = _symbol(pair)
    fields: list[tuple[float, float, Side, int]] = []
    for row in _v1_trades_decoder.decode(payload):
        if len(row) < 6:
            raise FrameError(f"v1 trade {row!r} has {len(row)} fields, not 6")
        price, volume, time, side = row[:4]
        if side not in ("b", "s"):
            raise FrameError(f"v1 trade side {side!r} is not 'b' or 's'")
        fields.append(
            (
                _positive(_decimal(price, "price"), "price"),
                _positive(_decimal(volume, "volume"), "volume"),
                "buy" if side == "b" else "sell",  # v1 names the taker's side too
                seconds_us(time),
            )
        )
    if not fields:
        raise FrameError("v1 trade frame with no trades")
    first = keys.first_key(recv_us, raw, len(fields))  # only once the frame is known valid
    return [
        Trade(EXCHANGE, symbol, first + n, price, qty, side, ts_event, recv_us)
        for n, (price, qty, side, ts_event) in enumerate(fields)
    ]


def _v1_quote(payload: msgspec.Raw, pair: str, recv_us: int) -> Quote:
    ticker = _v1_ticker_decoder.decode(payload)
    return Quote(
        exchange=EXCHANGE,
        symbol=_symbol(pair),
        bid=_positive(_decimal(ticker.b[0], "bid"), "bid"),
        bid_qty=_non_negative(_decimal(ticker.b[2], "bid_qty"), "bid_qty"),
        ask=_positive(_decimal(ticker.a[0], "ask"), "ask"),
        ask_qty=_non_negative(_decimal(ticker.a[2], "ask_qty"), "ask_qty"),
        ts_event=recv_us,  # v1 ticker frames carry no time
        ts_recv=recv_us,
    )


def _v1_array(raw: bytes, recv_us: int, keys: ArrivalKeys) -> list[Parsed]:
    items = _array_decoder.decode(raw)
    if len(items) < 4:
        raise FrameError(f"v1 channel frame has {len(items)} elements, not 4 or 5")
    name, pair = _str_decoder.decode(items[-2]), _str_decoder.decode(items[-1])
    if name == "trade" and len(items) == 4:
        return _v1_trades(items[1], pair, raw, recv_us, keys)
    if name == "ticker" and len(items) == 4:
        return [_v1_quote(items[1], pair, recv_us)]
    if name.startswith(V1_OTHER_CHANNELS):
        return [Control("other", {"channel": name, "pair": pair})]
    raise FrameError(f"unsupported v1 channel {name!r}")


# -- entry point ------------------------------------------------------------------------


def parse_frame(raw: bytes, recv_us: int, keys: ArrivalKeys) -> list[Parsed]:
    """Records in one v2 or v1 frame. Raises FrameError on anything malformed."""
    start = raw.lstrip()[:1]
    try:
        if start == b"[":
            return _v1_array(raw, recv_us, keys)
        if start != b"{":
            raise FrameError("frame is neither a JSON object nor an array")
        body = _object_decoder.decode(raw)
        if "event" in body:
            return _v1_event(body)
        return _v2_object(body, recv_us)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise FrameError(f"not valid JSON of a Kraken frame: {exc}") from None
