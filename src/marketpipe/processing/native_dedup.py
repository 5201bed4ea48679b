"""Dedup within a batch on the native path: each (exchange, symbol)'s first occurrence of
every trade id, found by the Rust extension (native/src/dedup.rs) in one pass over Arrow.

The same rows as Polars' `partition_by("exchange", "symbol")` (pairs in order of first
appearance) then `unique(subset="trade_id", keep="first", maintain_order=True)` on each
part, which `CandleEngine._dedup` does on the Python path; the engine still checks the rows
found here against its ledgers (ids of earlier batches).
"""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from marketpipe.observability import native
from marketpipe.processing.native_fold import ArrowData, extension

Rows = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class PairRows:
    """One pair's first-occurrence rows, `rows[start:end]` of `FirstRows.rows`, out of
    `delivered` rows it has in the batch (duplicates included)."""

    exchange: str
    symbol: str
    start: int
    end: int
    delivered: int


@dataclass(frozen=True, slots=True)
class FirstRows:
    rows: Rows  # kept row numbers, pair after pair, each pair's in arrival order
    pairs: list[PairRows]  # in order of first appearance


def available() -> bool:
    """Whether the loaded extension has the dedup. A build from before it (not rebuilt since)
    still folds candles natively; its engine dedups on the Python path, with equal results.
    (`first_rows` is not in `observability.native._REQUIRED`, which would switch such a build
    off whole.)"""
    module = native.extension()
    return module is not None and hasattr(module, "first_rows")


def first_rows(trades: ArrowData) -> FirstRows:
    """The first occurrence of each trade id per (exchange, symbol) of `trades` (the trade
    columns of TRADE_SCHEMA, timestamps as int64 or timestamp[us])."""
    batch, pairs = extension().first_rows(trades)
    rows = pa.record_batch(batch).column(0).to_numpy()
    return FirstRows(rows, [PairRows(*pair) for pair in pairs])
