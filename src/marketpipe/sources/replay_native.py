"""One block of a `<recv_ns> <json>` recording decoded by the Rust extension (native/).

The extension decodes the Binance `@trade` and `@bookTicker` frames it is sure of straight
into Arrow columns and hands every other line back. Here the venue's symbols are normalized
once per block (the same `SymbolMap` as the Python path), and a line whose symbol does not
normalize goes back to the rest too, so the typed parser dead-letters it as it always has.
"""

from dataclasses import dataclass
from types import ModuleType

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from marketpipe.model.schemas import TRADE_SCHEMA
from marketpipe.model.symbols import SymbolMap
from marketpipe.sources.binance.frames import EXCHANGE

_QUOTE_COLUMNS = ["exchange", "symbol", "bid", "bid_qty", "ask", "ask_qty", "ts_event", "ts_recv"]


@dataclass(slots=True)
class NativeBlock:
    trades: pa.Table  # TRADE_SCHEMA, in line order
    # Decoded bookTicker quotes: QUOTE_SCHEMA's columns (int µs times) plus `no` (the line)
    # and `stream` (null unless the line starts `<digits> {"stream":"NAME"`).
    quotes: pl.DataFrame
    rest: pl.DataFrame  # `line`, `no`: the lines for the Python parser, in line order


def decode_block(
    native: ModuleType, block: bytes, first_line: int, symbols: SymbolMap
) -> NativeBlock:
    trades_c, quotes_c, rest_c, natives = native.decode_binance_block(block, first_line, EXCHANGE)
    trades, quotes = pa.record_batch(trades_c), pa.record_batch(quotes_c)
    rest = pl.from_arrow(pa.record_batch(rest_c))
    assert isinstance(rest, pl.DataFrame)

    normalized: list[str | None] = []
    for name in natives:
        try:
            normalized.append(symbols.normalize(name))
        except ValueError:  # the typed parser dead-letters it, with its own message
            normalized.append(None)
    mapping = pa.array(normalized, type=pa.string())
    bad = [i for i, s in enumerate(normalized) if s is None]
    if bad:
        demoted: list[pa.RecordBatch] = []
        kept: list[pa.RecordBatch] = []
        for batch in (trades, quotes):
            failed = pc.is_in(batch["symbol_index"], pa.array(bad, type=pa.int32()))
            demoted.append(batch.filter(failed))
            kept.append(batch.filter(pc.invert(failed)))
        trades, quotes = kept
        rest = _with_lines(rest, block, demoted)

    trade_table = pa.Table.from_arrays(
        [
            trades["exchange"],
            mapping.take(trades["symbol_index"]),
            *(trades[name] for name in TRADE_SCHEMA.names[2:]),
        ],
        schema=TRADE_SCHEMA,
    )
    quote_frame = pl.from_arrow(
        pa.Table.from_arrays(
            [
                quotes["exchange"],
                mapping.take(quotes["symbol_index"]),
                *(quotes[name] for name in ("bid", "bid_qty", "ask", "ask_qty")),
                quotes["ts_event"].cast(pa.int64()),
                quotes["ts_recv"].cast(pa.int64()),
                quotes["no"],
                quotes["stream"],
            ],
            names=[*_QUOTE_COLUMNS, "no", "stream"],
        )
    )
    assert isinstance(quote_frame, pl.DataFrame)
    return NativeBlock(trade_table, quote_frame, rest)


def _with_lines(rest: pl.DataFrame, block: bytes, demoted: list[pa.RecordBatch]) -> pl.DataFrame:
    """`rest` plus the demoted lines (decoded rows whose symbol did not normalize), in order."""
    lines: list[str] = []
    numbers: list[int] = []
    for batch in demoted:
        for no, start, end in zip(
            batch["no"].to_pylist(), batch["start"].to_pylist(), batch["end"].to_pylist(),
            strict=True,
        ):  # fmt: skip
            lines.append(block[start:end].decode())  # decoded natively, so valid UTF-8
            numbers.append(no)
    extra = pl.DataFrame({"line": lines, "no": numbers}, schema=rest.schema)
    return pl.concat([rest, extra]).sort("no")
