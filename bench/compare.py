"""Are two engines' candles equal? Checked before any ratio is reported.

Keys (symbol, interval, open_time), open/high/low/close, trade count and first/last trade id
must match exactly; sums (volume, quote volume, taker-buy volume, VWAP) by the tests' rule,
`harness.reference.sums_agree` (relative 1e-9), since engines add the same floats in
different orders.
"""

from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from bench.peers import CANDLE_COLUMNS
from harness.reference import ABS_TOL, REL_TOL, SUM_FIELDS

KEY = ["symbol", "interval", "open_time"]
CLOSE = [name for name in SUM_FIELDS if name in CANDLE_COLUMNS]
EXACT = [name for name in CANDLE_COLUMNS if name not in KEY and name not in CLOSE]


def marketpipe_candles(warm: Path, out: Path) -> Path:
    """marketpipe's stored candles (the warm store) in the peers' columns, as Parquet."""
    con = duckdb.connect(str(warm), read_only=True)
    try:
        con.execute(
            f"""COPY (SELECT symbol, interval, epoch_ms(open_time) AS open_time, open, high, low,
                    close, volume, quote_volume, taker_buy_volume, trade_count, vwap,
                    first_trade_id, last_trade_id FROM candles) TO '{out}' (FORMAT parquet)"""
        )
    finally:
        con.close()
    return out


def _load(path: Path) -> pl.DataFrame:
    frame = pl.read_parquet(path if path.is_file() else path / "*.parquet")
    return frame.select(CANDLE_COLUMNS).with_columns(
        pl.col("open_time").cast(pl.Int64),
        pl.col("trade_count").cast(pl.Int64),
        pl.col("first_trade_id").cast(pl.Int64),
        pl.col("last_trade_id").cast(pl.Int64),
    )


def compare(reference: Path, other: Path) -> dict[str, Any]:
    """Equality report of `other` against `reference` (marketpipe's candles)."""
    ref, oth = _load(reference), _load(other)
    joined = ref.join(oth, on=KEY, how="full", suffix="_o", coalesce=True)
    missing = joined.filter(pl.col("open_o").is_null() & pl.col("trade_count_o").is_null()).height
    extra = joined.filter(pl.col("open").is_null() & pl.col("trade_count").is_null()).height
    both = joined.drop_nulls(["trade_count", "trade_count_o"])
    mismatched: dict[str, int] = {}
    for name in EXACT:
        bad = both.filter(pl.col(name) != pl.col(f"{name}_o")).height
        if bad:
            mismatched[name] = bad
    for name in CLOSE:
        a, b = pl.col(name), pl.col(f"{name}_o")
        # sums_agree (math.isclose) over whole columns
        allowed = pl.max_horizontal(REL_TOL * pl.max_horizontal(a.abs(), b.abs()), ABS_TOL)
        bad = both.filter((a - b).abs() > allowed).height
        if bad:
            mismatched[name] = bad
    per_interval = dict(ref.group_by("interval").len().sort("interval").iter_rows())
    return {
        "equal": not missing and not extra and not mismatched,
        "candles": ref.height,
        "candles_per_interval": per_interval,
        "missing_in_other": missing,
        "extra_in_other": extra,
        "mismatched_fields": mismatched,
        "rule": f"exact: {', '.join(EXACT)}; relative {REL_TOL:g} "
        f"(absolute {ABS_TOL:g}): {', '.join(CLOSE)}",
    }
