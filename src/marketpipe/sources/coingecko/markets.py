"""`/coins/markets` bodies -> MarketSnapshot records; whatever does not parse, dead letters.

The body is a JSON array of one object per coin (CoinGecko's documented schema):
`id`, `symbol` (lower case), `name`, `current_price`, `market_cap`, `market_cap_rank`,
`fully_diluted_valuation`, `total_volume`, `circulating_supply`, `total_supply`,
`max_supply`, `last_updated` (ISO-8601 in UTC, milliseconds: `2024-02-05T07:23:50.583Z`),
and more we do not keep (`high_24h`, `ath`, `roi`, ...). Any figure may be `null`.

- `asset` is the upper-cased `symbol`; `ts_source` is `last_updated` in UTC µs.
- Unknown figures stay None (a `null` market cap is not a market cap of 0).
- A row without a price or a `last_updated`, or with a wrong type, is one dead letter; the
  other rows of the body still become snapshots. A body that is not a JSON array is one
  dead letter for the whole body.
"""

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import msgspec

from marketpipe.model.errors import FrameError
from marketpipe.model.records import DeadLetter, MarketSnapshot

SOURCE: Final = "coingecko"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MarketRow(msgspec.Struct):
    """The fields of one `/coins/markets` entry we keep; the others are ignored."""

    id: str
    symbol: str
    current_price: float | None = None
    market_cap: float | None = None
    market_cap_rank: int | None = None
    fully_diluted_valuation: float | None = None
    total_volume: float | None = None
    circulating_supply: float | None = None
    last_updated: str | None = None


@dataclass(slots=True)
class ParsedMarkets:
    snapshots: list[MarketSnapshot] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


_body_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_row_decoder = msgspec.json.Decoder(MarketRow)


def time_us(text: str) -> int:
    """`2024-02-05T07:23:50.583Z` as UTC µs since the epoch; FrameError if it is not one
    (naive times are refused: CoinGecko always says Z)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise FrameError(f"last_updated {text!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise FrameError(f"last_updated {text!r} has no time zone")
    delta = moment - _EPOCH  # exact integer arithmetic, no float rounding of µs
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def snapshot(row: MarketRow, vs_currency: str, recv_us: int) -> MarketSnapshot:
    """One row as a snapshot; FrameError when it lacks what a snapshot needs."""
    symbol = row.symbol.strip().upper()
    if not symbol:
        raise FrameError(f"coin {row.id!r} has an empty symbol")
    if row.current_price is None:
        raise FrameError(f"coin {row.id!r} has no current_price")
    if row.last_updated is None:
        raise FrameError(f"coin {row.id!r} has no last_updated")
    for name in ("current_price", "market_cap", "fully_diluted_valuation", "total_volume"):
        value = getattr(row, name)
        if value is not None and not (0.0 <= value < float("inf")):
            raise FrameError(f"coin {row.id!r}: {name} {value!r} is not a finite figure >= 0")
    return MarketSnapshot(
        source=SOURCE,
        asset=symbol,
        vs_currency=vs_currency.upper(),
        price=float(row.current_price),
        market_cap=row.market_cap,
        fully_diluted_valuation=row.fully_diluted_valuation,
        volume_24h=row.total_volume,
        circulating_supply=row.circulating_supply,
        market_cap_rank=row.market_cap_rank,
        ts_source=time_us(row.last_updated),
        ts_recv=recv_us,
    )


def parse_markets(
    body: bytes, vs_currency: str, recv_us: int | None = None, context: str = "rest:coins/markets"
) -> ParsedMarkets:
    """Every row of a `/coins/markets` body: snapshots, and a dead letter per bad row (or one
    for a body that is no JSON array). Never raises."""
    recv = time.time_ns() // 1000 if recv_us is None else recv_us
    out = ParsedMarkets()

    def dead(raw: bytes, error: str) -> None:
        out.dead_letters.append(
            DeadLetter(ts=recv, source=SOURCE, error=error, raw=raw, context=context)
        )

    try:
        rows = _body_decoder.decode(body)
    except msgspec.DecodeError as exc:
        dead(bytes(body), f"body is not a JSON array of coins: {exc}")
        return out
    for raw in rows:
        raw_bytes = bytes(raw)
        try:
            out.snapshots.append(snapshot(_row_decoder.decode(raw_bytes), vs_currency, recv))
        except (msgspec.DecodeError, FrameError, OverflowError) as exc:
            dead(raw_bytes, f"bad coin row: {exc}")
    return out
