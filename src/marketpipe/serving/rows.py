"""Records as plain rows for people and clients: DESIGN.md field names, ISO-8601 UTC times."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from marketpipe.model.records import Alert, Candle, MarketSnapshot, Position, Trade

TIME_FIELDS = frozenset({"ts_event", "ts_recv", "open_time", "close_time", "ts"})


def iso(us: int) -> str:
    """Microseconds to ISO-8601 UTC ending in `Z`, with only the sub-second digits needed."""
    moment = datetime.fromtimestamp(us // 1_000_000, tz=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = us % 1_000_000
    if fraction % 1000 == 0 and fraction:
        text += f".{fraction // 1000:03d}"
    elif fraction:
        text += f".{fraction:06d}"
    return text + "Z"


def to_rows(records: Sequence[Trade | Candle | Alert]) -> list[dict[str, Any]]:
    rows = []
    for record in records:
        row = msgspec.structs.asdict(record)
        for name in TIME_FIELDS & row.keys():
            row[name] = iso(row[name])
        rows.append(row)
    return rows


def position_row(position: Position) -> dict[str, Any]:
    return {
        "exchange": position.exchange,
        "symbol": position.symbol,
        "last_trade_id": position.last_trade_id,
        "last_trade_time": iso(position.max_ts_event) if position.max_ts_event else None,
        "completeness": position.completeness,
        "missing_ids": position.missing_ids,
        "gaps_found": position.gaps_found,
        "gaps_filled": position.gaps_filled,
        "trades_seen": position.trades_seen,
        "duplicates": position.duplicates,
    }


def snapshot_row(snapshot: MarketSnapshot) -> dict[str, Any]:
    """Every field of a market snapshot; unknown figures stay null, times are ISO-8601 UTC."""
    row = msgspec.structs.asdict(snapshot)
    row["ts_source"] = iso(snapshot.ts_source)
    row["ts_recv"] = iso(snapshot.ts_recv)
    return row
