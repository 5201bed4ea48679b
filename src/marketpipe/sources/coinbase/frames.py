"""Coinbase Exchange ws-feed messages parsed into records at the edge (msgspec, typed).

- `match` and `last_match` (the product's latest trade, sent once on subscribing) become a
  Trade. Their `side` is the MAKER's side, so the taker side (`Trade.side`) is the opposite:
  a maker "sell" means the taker bought. `trade_id` is consecutive per product.
- `ticker` becomes a Quote from `best_bid`/`best_ask`. The current feed adds
  `best_bid_size`/`best_ask_size`; older frames (our 2021 recording) lack them, and then the
  quote's sizes are 0.0, meaning "not reported" (a Quote has no optional field, and the bus
  refuses NaN). Its time is the ticker's `time`, else the receive time.
- `heartbeat` is Control "heartbeat", `error` Control "error", `subscriptions` Control
  "result"; valid feed messages we do not ingest (`snapshot`, `l2update`, the full channel's,
  `status`) are Control "other", never dead letters.

Prices and sizes arrive as decimal strings, times as ISO-8601 with microseconds and `Z`.
Anything else raises FrameError, and the connector dead-letters it.
"""

import math
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

import msgspec

from marketpipe.model.errors import FrameError
from marketpipe.model.records import Quote, Side, Trade
from marketpipe.model.symbols import normalize
from marketpipe.sources.venue import Control, Parsed

EXCHANGE: Final = "coinbase"
MAX_INT64: Final = 2**63 - 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
# Valid ws-feed messages that are not ours to ingest.
OTHER_TYPES: Final = frozenset(
    {"snapshot", "l2update", "status", "received", "open", "done", "change", "activate"}
)
_TAKER: Final[dict[str, Side]] = {"buy": "sell", "sell": "buy"}


class _Envelope(msgspec.Struct):
    type: str
    product_id: str | None = None


class MatchMessage(msgspec.Struct):
    """`match` / `last_match`; `side` is the maker's."""

    trade_id: int
    side: Literal["buy", "sell"]
    size: str
    price: str
    product_id: str
    time: datetime
    sequence: int = 0


class TickerMessage(msgspec.Struct):
    product_id: str
    best_bid: str
    best_ask: str
    best_bid_size: str | None = None
    best_ask_size: str | None = None
    time: datetime | None = None


_envelope = msgspec.json.Decoder(_Envelope)
_match = msgspec.json.Decoder(MatchMessage)
_ticker = msgspec.json.Decoder(TickerMessage)
_body = msgspec.json.Decoder(dict[str, object])


def decimal(text: str, name: str, *, positive: bool = True) -> float:
    """A decimal string as a finite float, > 0 (or >= 0 with `positive=False`)."""
    try:
        value = float(text)
    except ValueError:
        raise FrameError(f"{name} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        kind = "positive" if positive else "non-negative"
        raise FrameError(f"{name} {text!r} is not a {kind} finite number")
    return value


def time_us(moment: datetime) -> int:
    """UTC µs since the epoch of a zoned time after the epoch (exact integer arithmetic)."""
    if moment.tzinfo is None:
        raise FrameError(f"time {moment.isoformat()} has no zone")
    us = (moment - _EPOCH) // _US
    if us <= 0:
        raise FrameError(f"time {moment.isoformat()} is not after the epoch")
    return us


def product_symbol(product_id: str) -> str:
    """Coinbase spells products `BTC-USD`, our normalized form; anything else is refused."""
    try:
        symbol = normalize(product_id)
    except ValueError as exc:
        raise FrameError(str(exc)) from None
    if symbol != product_id:
        raise FrameError(f"product_id {product_id!r} is not BASE-QUOTE")
    return symbol


def taker_side(maker_side: str) -> Side:
    return _TAKER[maker_side]


def trade_from_match(message: MatchMessage, recv_us: int) -> Trade:
    if not 0 <= message.trade_id <= MAX_INT64:
        raise FrameError(f"trade_id {message.trade_id} out of int64 range")
    return Trade(
        exchange=EXCHANGE,
        symbol=product_symbol(message.product_id),
        trade_id=message.trade_id,
        price=decimal(message.price, "price"),
        qty=decimal(message.size, "size"),
        side=taker_side(message.side),
        ts_event=time_us(message.time),
        ts_recv=recv_us,
    )


def quote_from_ticker(message: TickerMessage, recv_us: int) -> Quote:
    bid_size, ask_size = message.best_bid_size, message.best_ask_size
    return Quote(
        exchange=EXCHANGE,
        symbol=product_symbol(message.product_id),
        bid=decimal(message.best_bid, "best_bid"),
        bid_qty=0.0 if bid_size is None else decimal(bid_size, "best_bid_size", positive=False),
        ask=decimal(message.best_ask, "best_ask"),
        ask_qty=0.0 if ask_size is None else decimal(ask_size, "best_ask_size", positive=False),
        ts_event=recv_us if message.time is None else time_us(message.time),
        ts_recv=recv_us,
    )


def parse_frame(raw: bytes | str, recv_us: int) -> Parsed:
    """Parse one ws-feed message. Raises FrameError on anything malformed or unknown."""
    try:
        kind = _envelope.decode(raw).type
        if kind in ("match", "last_match"):
            return trade_from_match(_match.decode(raw), recv_us)
        if kind == "ticker":
            return quote_from_ticker(_ticker.decode(raw), recv_us)
        if kind in OTHER_TYPES:  # book data can be large: keep only what names it
            envelope = _envelope.decode(raw)
            return Control("other", {"type": kind, "product_id": envelope.product_id})
        if kind == "heartbeat":
            return Control("heartbeat", _body.decode(raw))
        if kind == "subscriptions":
            return Control("result", _body.decode(raw))
        if kind == "error":
            return Control("error", _body.decode(raw))
    except msgspec.ValidationError as exc:
        raise FrameError(f"invalid message: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise FrameError(f"not a JSON object: {exc}") from None
    except OverflowError as exc:  # a time too far out for datetime arithmetic
        raise FrameError(f"time out of range: {exc}") from None
    raise FrameError(f"unknown message type {kind[:40]!r}")
