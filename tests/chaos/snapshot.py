"""What a data dir holds after a run, read independently of the pipeline, for comparisons.

Reads the DuckDB file and the Parquet lake directly (duckdb + pyarrow), so a corrupt or
inconsistent store shows up here rather than being papered over by the code under test.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.dataset as ds

from harness.reference import sums_agree
from marketpipe.storage.embedded import EmbeddedStore

CandleKey = tuple[str, str, int]  # symbol, interval, open_time (µs)
CandleValue = tuple[float, float, float, float, float, float, int, int, int, bool]


@dataclass(frozen=True)
class Snapshot:
    candles: dict[CandleKey, CandleValue]
    alerts: dict[str, tuple[str, str, int]]  # alert_id -> (kind, symbol, ts)
    trades: set[tuple[str, int]]  # (symbol, trade_id)
    trade_rows: int  # raw rows in the warm store (duplicates would show here)
    lake_ids: list[tuple[str, int]]  # every (symbol, trade_id) row in the lake
    completeness: dict[str, float]
    dead_letters: int


def snapshot(data_dir: Path, *, recover: bool = True) -> Snapshot:
    """`recover`: first open the data dir as the pipeline's next start would, which applies
    commit-log entries the warm store lacks (what a restart sees); then read it directly."""
    if recover:
        EmbeddedStore(data_dir).close()
    con = duckdb.connect(str(data_dir / "warm.duckdb"), read_only=True)
    try:
        candles = {
            (s, i, t): (o, h, lo, c, v, qv, n, first, last, final)
            for s, i, t, o, h, lo, c, v, qv, n, first, last, final in con.execute(
                """SELECT symbol, interval, epoch_us(open_time), open, high, low, close, volume,
                          quote_volume, trade_count, first_trade_id, last_trade_id, is_final
                   FROM candles"""
            ).fetchall()
        }
        alerts = {
            a: (k, s, t)
            for a, k, s, t in con.execute(
                "SELECT alert_id, kind, symbol, epoch_us(ts) FROM alerts"
            ).fetchall()
        }
        rows = con.execute("SELECT symbol, trade_id FROM trades_recent").fetchall()
        positions = con.execute("SELECT symbol, trades_seen, id_ranges FROM positions").fetchall()
        dead = con.execute("SELECT count(*) FROM dead_letters").fetchone()
    finally:
        con.close()
    completeness = {}
    for symbol, seen, ranges in positions:
        # id_ranges is JSON [[lo, hi], ...]: complete when the ranges leave no hole.
        spans = sorted(json.loads(ranges))
        covered = sum(hi - lo + 1 for lo, hi in spans)
        completeness[symbol] = covered / (spans[-1][1] - spans[0][0] + 1) if seen else 0.0
    lake = data_dir / "lake" / "trades"
    lake_ids: list[tuple[str, int]] = []
    if lake.is_dir():
        table = ds.dataset(lake, format="parquet", partitioning="hive").to_table(
            columns=["symbol", "trade_id"]
        )
        lake_ids = list(
            zip(
                table.column("symbol").to_pylist(),
                table.column("trade_id").to_pylist(),
                strict=True,
            )
        )
    return Snapshot(
        candles=candles,
        alerts=alerts,
        trades=set(rows),
        trade_rows=len(rows),
        lake_ids=lake_ids,
        completeness=completeness,
        dead_letters=int(dead[0]) if dead else 0,
    )


def assert_same_results(got: Snapshot, want: Snapshot) -> None:
    """Candles, alerts and the trade set of `got` equal `want`'s (sums by `sums_agree`)."""
    assert got.trades == want.trades, (
        f"{len(got.trades ^ want.trades)} trades differ "
        f"(missing {len(want.trades - got.trades)}, extra {len(got.trades - want.trades)})"
    )
    assert got.candles.keys() == want.candles.keys(), "different candle windows"
    for key, value in want.candles.items():
        other = got.candles[key]
        o, h, lo, c, v, qv, n, first, last, final = value
        assert (o, h, lo, c, n, first, last, final) == (
            other[0], other[1], other[2], other[3], other[6], other[7], other[8], other[9],
        ), key  # fmt: skip
        assert sums_agree(v, other[4]), key
        assert sums_agree(qv, other[5]), key
    assert got.alerts == want.alerts


def assert_consistent(snap: Snapshot) -> None:
    """No duplicates anywhere, and every symbol complete."""
    assert snap.trade_rows == len(snap.trades), "raw trade rows != unique trade ids"
    assert len(snap.lake_ids) == len(set(snap.lake_ids)), "the lake holds a trade twice"
    assert set(snap.lake_ids) <= snap.trades
    assert snap.completeness and all(v == 1.0 for v in snap.completeness.values()), (
        snap.completeness
    )
