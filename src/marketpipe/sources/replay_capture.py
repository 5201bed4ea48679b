"""Our own capture JSONL: one trade object per line, as `marketpipe query trades --format jsonl`
writes it, for any venue.

A line's venue is the reader's `venue` when given (`--venue`), else the line's `exchange`;
it must be a registered venue. The first line is checked before any work, so a file of an
unknown venue (or naming none, without `--venue`) fails at start, naming it; a later line with
a bad venue, symbol, side or time is dead-lettered like any malformed line. Times are µs
integers or ISO-8601 text; the records are already ours, so no venue parser is involved.
"""

from datetime import datetime
from pathlib import Path

import msgspec
import polars as pl

from marketpipe.model.errors import SourceError
from marketpipe.model.schemas import TRADE_SCHEMA
from marketpipe.model.symbols import SymbolMap
from marketpipe.sources.replay_chunk import ReplayChunk, dead_letter, to_trade_table
from marketpipe.sources.venues import venue as registered


class CapturedTrade(msgspec.Struct):
    symbol: str
    trade_id: int
    price: float
    qty: float
    side: str
    ts_event: str | int
    ts_recv: str | int
    exchange: str | None = None


def line_venue(row: CapturedTrade, override: str | None) -> str:
    """The venue of a line; ValueError naming what is wrong."""
    name = override if override is not None else row.exchange
    if name is None:
        raise ValueError("the line names no exchange; give the venue with --venue")
    return registered(name).name


def check_capture_start(path: Path, head: bytes, override: str | None) -> None:
    """Fail before any work when the first line's venue is unknown or missing."""
    try:
        row = msgspec.json.decode(head, type=CapturedTrade)
    except (msgspec.DecodeError, ValueError):
        return  # a malformed first line is dead-lettered like any other
    try:
        line_venue(row, override)
    except ValueError as exc:
        raise SourceError(f"{path}: line 1: {exc}") from None


class CaptureLines:
    """Blocks of capture JSONL into chunks of trades."""

    def __init__(self, symbols: SymbolMap, venue: str | None = None) -> None:
        self.symbols = symbols
        self.venue = venue

    def chunk(self, block: bytes, path: Path, first_line: int = 1) -> ReplayChunk:
        good: list[dict[str, object]] = []
        chunk = ReplayChunk(TRADE_SCHEMA.empty_table())
        for no, line in enumerate(block.split(b"\n"), first_line):
            if not line.strip():
                continue
            try:
                row = msgspec.json.decode(line, type=CapturedTrade)
                good.append(self._columns(row))
            except (msgspec.DecodeError, ValueError) as exc:
                text = line.decode(errors="replace")
                chunk.dead_letters.append(dead_letter(text, exc, path, no))
        if good:
            chunk.trades = to_trade_table(pl.DataFrame(good))
        return chunk

    def _columns(self, row: CapturedTrade) -> dict[str, object]:
        if row.side not in ("buy", "sell"):
            raise ValueError(f"side {row.side!r} is not buy or sell")
        return {
            "exchange": line_venue(row, self.venue),
            "symbol": self.symbols.normalize(row.symbol),
            "trade_id": row.trade_id,
            "price": row.price,
            "qty": row.qty,
            "side": row.side,
            "ts_event": _to_us(row.ts_event),
            "ts_recv": _to_us(row.ts_recv),
        }


def _to_us(value: str | int) -> int:
    if isinstance(value, int):
        return value
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return int(parsed.timestamp()) * 1_000_000 + parsed.microsecond
