"""Kafka message format: JSON values carrying a `v` schema version, and the message keys.

Values are the record's fields plus `v`. Decoding validates as it parses (msgspec): a value
that is not JSON, lacks a field, has a wrong type, an unknown version or an impossible price is
a `PoisonMessage` error, which the consumer dead-letters instead of crashing on.
"""

from collections.abc import Sequence
from typing import Annotated, Literal

import msgspec
import pyarrow as pa

from marketpipe.model.errors import MarketpipeError
from marketpipe.model.records import Alert, Candle, MarketSnapshot, Quote, Trade
from marketpipe.model.schemas import TRADE_INT_SCHEMA, TRADE_SCHEMA

SCHEMA_VERSION = 1

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class PoisonMessage(MarketpipeError):
    """A message that cannot become a record; it goes to the dead-letter topic."""


class TradeV1(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """`marketpipe.trades` value, version 1. Field order matches TRADE_SCHEMA."""

    v: Literal[1]
    exchange: Name
    symbol: Name
    trade_id: int
    price: Positive
    qty: Positive
    side: Literal["buy", "sell"]
    ts_event: int
    ts_recv: int


class QuoteV1(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    v: Literal[1]
    exchange: Name
    symbol: Name
    bid: NonNegative
    bid_qty: NonNegative
    ask: NonNegative
    ask_qty: NonNegative
    ts_event: int
    ts_recv: int


class MarketSnapshotV1(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """`marketpipe.market` value, version 1. Unknown figures are null, never 0."""

    v: Literal[1]
    source: Name
    asset: Name
    vs_currency: Name
    price: NonNegative
    market_cap: NonNegative | None
    fully_diluted_valuation: NonNegative | None
    volume_24h: NonNegative | None
    circulating_supply: NonNegative | None
    market_cap_rank: Annotated[int, msgspec.Meta(ge=1)] | None
    ts_source: int
    ts_recv: int


_encoder = msgspec.json.Encoder()
_trade_decoder = msgspec.json.Decoder(TradeV1)
_trades_decoder = msgspec.json.Decoder(list[TradeV1])
_quote_decoder = msgspec.json.Decoder(QuoteV1)
_snapshot_decoder = msgspec.json.Decoder(MarketSnapshotV1)


def symbol_key(exchange: str, symbol: str) -> bytes:
    """Trades and quotes are keyed `exchange:symbol`: one symbol stays in one partition."""
    return f"{exchange}:{symbol}".encode()


def candle_key(candle: Candle) -> bytes:
    """The compacted candles topic keeps the latest value per window."""
    return f"{candle.exchange}:{candle.symbol}:{candle.interval}:{candle.open_time}".encode()


def market_key(snapshot: MarketSnapshot) -> bytes:
    """Market snapshots are keyed `source:asset:vs_currency`: one series, one partition."""
    return f"{snapshot.source}:{snapshot.asset}:{snapshot.vs_currency}".encode()


def encode(record: Trade | Quote | Candle | Alert | MarketSnapshot) -> bytes:
    fields = msgspec.structs.asdict(record)
    return _encoder.encode({"v": SCHEMA_VERSION, **fields})


def encode_trade_columns(trades: pa.Table) -> list[tuple[bytes, bytes]]:
    """(key, value) per trade of an Arrow table (TRADE_SCHEMA), without building records."""
    columns = trades.cast(TRADE_INT_SCHEMA).to_pydict()
    names = list(columns)
    out = []
    for row in zip(*columns.values(), strict=True):
        value = dict(zip(names, row, strict=True))
        out.append(
            (
                symbol_key(value["exchange"], value["symbol"]),
                _encoder.encode({"v": SCHEMA_VERSION, **value}),
            )
        )
    return out


def decode_trade(value: bytes | None) -> TradeV1:
    if value is None:
        raise PoisonMessage("empty message value")
    try:
        return _trade_decoder.decode(value)
    except msgspec.DecodeError as exc:
        raise PoisonMessage(f"not a v{SCHEMA_VERSION} trade: {exc}") from None


def decode_trades(values: Sequence[bytes]) -> list[TradeV1]:
    """Decode many values in one call (the common, all-valid case); raises PoisonMessage if
    any is bad, and the caller then sorts them out one by one."""
    try:
        return _trades_decoder.decode(b"[" + b",".join(values) + b"]")
    except msgspec.DecodeError as exc:
        raise PoisonMessage(str(exc)) from None


def decode_quote(value: bytes | None) -> Quote:
    if value is None:
        raise PoisonMessage("empty message value")
    try:
        q = _quote_decoder.decode(value)
    except msgspec.DecodeError as exc:
        raise PoisonMessage(f"not a v{SCHEMA_VERSION} quote: {exc}") from None
    return Quote(*msgspec.structs.astuple(q)[1:])


def decode_market_snapshot(value: bytes | None) -> MarketSnapshot:
    if value is None:
        raise PoisonMessage("empty message value")
    try:
        snapshot = _snapshot_decoder.decode(value)
    except msgspec.DecodeError as exc:
        raise PoisonMessage(f"not a v{SCHEMA_VERSION} market snapshot: {exc}") from None
    return MarketSnapshot(*msgspec.structs.astuple(snapshot)[1:])


def trades_table(trades: Sequence[TradeV1]) -> pa.Table:
    """Decoded trades as an Arrow table (TRADE_SCHEMA), column by column."""
    if not trades:
        return TRADE_SCHEMA.empty_table()
    rows = [msgspec.structs.astuple(t)[1:] for t in trades]
    columns = list(zip(*rows, strict=True))
    arrays = [pa.array(col, type=f.type) for col, f in zip(columns, TRADE_INT_SCHEMA, strict=True)]
    return pa.Table.from_arrays(arrays, schema=TRADE_INT_SCHEMA).cast(TRADE_SCHEMA)
