"""Finnhub WebSocket frames -> Trade and Control records, with keys for id-less trades.

The server sends three kinds of frame (Finnhub's documented format):
- `{"type":"trade","data":[{"s":"AAPL","p":189.5,"t":1700000000123,"v":10,"c":["1","12"]}]}`:
  a batch of trades, possibly of several symbols; `t` in ms, `v` the volume, `c` the trade
  conditions (a list of codes, or null or absent). An item with `v` = 0 is a price update,
  not a trade: it is skipped.
- `{"type":"ping"}` keepalives -> `Control("heartbeat")`;
- `{"type":"error","msg":"..."}` (a bad token, too many symbols) -> `Control("error")`.
Anything else raises FrameError, and the connector dead-letters it.

Trade keys (`TradeKeys`): Finnhub gives no trade id, so `trade_id` is
`t_ms * 1000 + ordinal`, the ordinal numbering that symbol's trades of the same millisecond in
arrival order (within a frame by position, across frames continuing). Two real trades with
equal price, size and time keep distinct keys. A frame seen again byte for byte (a duplicated
or replayed frame) gets its first records back, keys included, so it is never stored twice;
two byte-identical frames are taken for one, since nothing tells them apart. Memory is
bounded: the newest `duplicate_window` frames and `ordinal_window` (symbol, ms) counters are
kept; a trade for a millisecond no longer counted restarts at ordinal 0 and is taken
downstream for a duplicate (the price of having no ids). More than 1000 trades of one symbol
in one millisecond cannot be keyed: FrameError.

Side (`Trade.side` is the taker's, which Finnhub does not give) follows the tick rule per
symbol, in arrival order: a price above the last is "buy", below is "sell", equal repeats the
last side, and the first trade of a symbol is "buy". It is an estimate, not the venue's word.
"""

import hashlib
import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Final

import msgspec

from marketpipe.model.errors import FrameError
from marketpipe.model.records import Side, Trade
from marketpipe.sources.finnhub.symbols import is_ticker, to_symbol
from marketpipe.sources.venue import Control, Parsed

EXCHANGE: Final = "finnhub"
SLOTS: Final = 1000  # trades per symbol per millisecond that a key can tell apart
MAX_INT64: Final = 2**63 - 1
MAX_MS: Final = (MAX_INT64 - (SLOTS - 1)) // SLOTS  # the last ms whose every key fits int64


class TradeItem(msgspec.Struct):
    s: str
    p: float
    t: int
    v: float
    c: list[str] | None = None


class Message(msgspec.Struct):
    type: str
    data: list[TradeItem] | None = None
    msg: str | None = None


_decoder = msgspec.json.Decoder(Message)


def _check(item: TradeItem) -> None:
    if not is_ticker(item.s):
        raise FrameError(f"symbol {item.s!r} is not a stock ticker")
    if not math.isfinite(item.p) or item.p <= 0:
        raise FrameError(f"price {item.p!r} is not a positive finite number")
    if not math.isfinite(item.v) or item.v < 0:
        raise FrameError(f"volume {item.v!r} is not a non-negative finite number")
    if not 0 < item.t <= MAX_MS:
        raise FrameError(f"time {item.t} ms is out of range")


class TradeKeys:
    """Deterministic keys and tick-rule sides for one run's id-less trades (see module doc)."""

    def __init__(self, duplicate_window: int = 4096, ordinal_window: int = 65_536) -> None:
        self._duplicate_window = duplicate_window
        self._ordinal_window = ordinal_window
        self._frames: OrderedDict[bytes, tuple[Trade, ...]] = OrderedDict()
        self._next: OrderedDict[tuple[str, int], int] = OrderedDict()  # (symbol, ms) -> ordinal
        self._last: dict[str, tuple[float, Side]] = {}  # symbol -> last price, last side

    def seen(self, raw: bytes) -> tuple[Trade, ...] | None:
        digest = hashlib.blake2b(raw, digest_size=16).digest()
        found = self._frames.get(digest)
        if found is not None:
            self._frames.move_to_end(digest)
        return found

    def assign(self, raw: bytes, items: Sequence[TradeItem], recv_us: int) -> tuple[Trade, ...]:
        """Records of a new trade frame; nothing is remembered if it raises."""
        ordinals: dict[tuple[str, int], int] = {}
        keyed: list[tuple[TradeItem, str, int]] = []
        for item in items:
            if item.v == 0:
                continue  # a price update, not a trade
            symbol = to_symbol(item.s)
            slot = (symbol, item.t)
            ordinal = ordinals.get(slot, self._next.get(slot, 0))
            if ordinal >= SLOTS:
                raise FrameError(f"more than {SLOTS} {item.s} trades in millisecond {item.t}")
            ordinals[slot] = ordinal + 1
            keyed.append((item, symbol, item.t * SLOTS + ordinal))
        for slot, next_ordinal in ordinals.items():
            self._next[slot] = next_ordinal
            self._next.move_to_end(slot)
        while len(self._next) > self._ordinal_window:
            self._next.popitem(last=False)
        records = tuple(
            Trade(
                EXCHANGE,
                symbol,
                key,
                item.p,
                item.v,
                self._side(symbol, item.p),
                item.t * 1000,
                recv_us,
            )
            for item, symbol, key in keyed
        )
        self._frames[hashlib.blake2b(raw, digest_size=16).digest()] = records
        while len(self._frames) > self._duplicate_window:
            self._frames.popitem(last=False)
        return records

    def _side(self, symbol: str, price: float) -> Side:
        last = self._last.get(symbol)
        side: Side
        if last is None or price > last[0]:
            side = "buy"
        elif price < last[0]:
            side = "sell"
        else:
            side = last[1]
        self._last[symbol] = (price, side)
        return side


def parse_frame(raw: bytes, recv_us: int, keys: TradeKeys) -> Sequence[Parsed]:
    """Records in one Finnhub frame. Raises FrameError on anything malformed."""
    try:
        message = _decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FrameError(f"invalid finnhub frame: {exc}") from None
    if message.type == "trade":
        if message.data is None:
            raise FrameError("trade frame has no 'data' list")
        for item in message.data:
            _check(item)
        earlier = keys.seen(raw)
        return earlier if earlier is not None else keys.assign(raw, message.data, recv_us)
    if message.type == "ping":
        return (Control("heartbeat", {}),)
    if message.type == "error":
        return (Control("error", {"msg": message.msg or ""}),)
    raise FrameError(f"unsupported message type {message.type!r}")
