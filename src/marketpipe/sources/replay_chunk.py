"""What replay hands the pipeline per block of a file: records, dead letters and counts."""

import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa

from marketpipe.model.records import DeadLetter, Quote
from marketpipe.model.schemas import TRADE_INT_SCHEMA, TRADE_SCHEMA
from marketpipe.sources.replay_files import FileBreak


@dataclass(slots=True)
class ReplayChunk:
    trades: pa.Table
    quotes: list[Quote] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    skipped: int = 0  # valid frames of streams we do not process (depth, snapshots)
    bytes_read: int = 0
    broken: str | None = None  # the file stopped being readable here: one line for the user


def to_trade_table(frame: pl.DataFrame) -> pa.Table:
    return frame.select(TRADE_SCHEMA.names).to_arrow().cast(TRADE_INT_SCHEMA).cast(TRADE_SCHEMA)


def dead_letter(line: str, exc: Exception, path: Path, line_no: int) -> DeadLetter:
    """A line that is not a record, named `file:line` so the user can find it."""
    return DeadLetter(
        ts=time.time_ns() // 1000,
        source="replay",
        error=str(exc),
        raw=line.encode(),
        context=f"{path}:{line_no}",
    )


def broken_chunk(broken: FileBreak, bytes_read: int = 0) -> ReplayChunk:
    return ReplayChunk(
        TRADE_SCHEMA.empty_table(),
        dead_letters=[broken.dead_letter()],
        bytes_read=bytes_read,
        broken=broken.message(),
    )
