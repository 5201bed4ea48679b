"""The candle fold on the native path: `partial_candles` and `rollup_partials` of
`processing.candles`, computed by the Rust extension (native/src/candles.rs) over Arrow.

Same columns, same rows and the same row order as the Polars functions. Sums (volume,
quote volume, taker volumes) run sequentially in `(ts_event, trade_id)` order within each
window, so a batch's fold does not depend on the order its trades arrived in; Polars sums
pairwise, so its sums may differ from these in the last bits (docs/native.md).

Arrow goes in through the C data interface (a Polars DataFrame or a pyarrow Table or
RecordBatch, whatever its string layout) and comes back the same way: no Python object per
trade on the way.
"""

from collections.abc import Sequence
from types import ModuleType
from typing import TypeAlias

import polars as pl
import pyarrow as pa

from marketpipe.model.errors import ConfigError
from marketpipe.observability import native

# Anything with `__arrow_c_stream__` or `__arrow_c_array__`.
ArrowData: TypeAlias = pl.DataFrame | pa.Table | pa.RecordBatch


def extension() -> ModuleType:
    """The loaded extension; ConfigError (saying why, and how to build it) when inactive."""
    module = native.extension()
    if module is None:
        raise ConfigError(f"the native candle fold was asked for: {native.status().reason}")
    return module


def partial_candles(trades: ArrowData, length_us: int) -> pl.DataFrame:
    """`candles.partial_candles(trades, length_us)`, folded natively."""
    return _frame(extension().partial_candles(trades, length_us))


def rollup_partials(partials: ArrowData, length_us: int) -> pl.DataFrame:
    """`candles.rollup_partials(partials, length_us)`, merged natively."""
    return _frame(extension().rollup_partials(partials, length_us))


def fold_candles(trades: ArrowData, lengths_us: Sequence[int]) -> pa.RecordBatch:
    """The engine's fold in one call: the partial candles of `trades` for the first length,
    then each later length rolled up from those (as `rollup_partials(minutes, length)`), in
    one batch: a leading `length_us` column, each length's rows in the order given."""
    return pa.record_batch(extension().fold_candles(trades, list(lengths_us)))


def _frame(batch: object) -> pl.DataFrame:
    frame = pl.from_arrow(pa.record_batch(batch))
    assert isinstance(frame, pl.DataFrame)
    return frame
