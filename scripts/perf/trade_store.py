"""What storing each raw trade costs, per write and per read (issue 14, item 3).

    PYTHONPATH=. .venv/bin/python scripts/perf/trade_store.py [--trades 1000000]

The trades are the bench's replay dataset (`bench.dataset`, 20 symbols), committed the way
`replay` commits them (100k-trade batches). Each step is timed in process CPU seconds (DuckDB
and Arrow use both cores) and wall seconds, best of three:

- `warm_commit`: the trades into DuckDB's `trades_recent`, a transaction per batch;
- `export_read`: the lake export reading them back, one partition at a time;
- `lake_write`: those partitions written as the lake's Parquet files;
- `query_*`: the newest 500 trades of each symbol (the API's recent-trades read), from
  `trades_recent` and from a DuckDB view over the lake's Parquet files.
"""

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
from bench.dataset import dataset

from marketpipe.model.batch import CommitBatch
from marketpipe.sources.replay import ReplayReader
from marketpipe.storage.duckdb_warm import DuckDBWarehouse
from marketpipe.storage.lake import ParquetLake

BATCH = 100_000  # engine.batch_max_trades: the slices replay commits


def _timed(step: Callable[[], object], repeat: int = 3) -> tuple[float, float]:
    """(CPU s, wall s) of the fastest of `repeat` runs (a shared machine inflates the others)."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        cpu, wall = time.process_time(), time.perf_counter()
        step()
        best = min(best, (time.process_time() - cpu, time.perf_counter() - wall))
    return best


def _commit_all(root: Path, trades: pa.Table) -> DuckDBWarehouse:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    warm = DuckDBWarehouse(root / "warm.duckdb")
    for offset in range(0, trades.num_rows, BATCH):
        warm.commit(CommitBatch(trades=trades.slice(offset, BATCH)))
    return warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=1_000_000)
    args = parser.parse_args()
    trades = pa.concat_tables(chunk.trades for chunk in ReplayReader(dataset(args.trades).paths))
    n = trades.num_rows
    rows: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="marketpipe-trade-store-") as tmp:
        work = Path(tmp)
        rows["warm_commit"] = _timed(lambda: _commit_all(work / "w", trades).close())
        warm = _commit_all(work / "w", trades)
        parts: list[pa.Table] = []

        def read_back() -> None:
            parts[:] = warm.export_rows(1, warm.last_seq)

        rows["export_read"] = _timed(read_back)

        def write_lake() -> None:
            shutil.rmtree(work / "lake", ignore_errors=True)
            lake = ParquetLake(work / "lake")
            for part in parts:
                lake.write_trades(part)

        rows["lake_write"] = _timed(write_lake)
        symbols = sorted(set(trades.column("symbol").to_pylist()))

        def newest(reader: Callable[[str], object]) -> Callable[[], None]:
            return lambda: [reader(symbol) for symbol in symbols for _ in range(10)]

        rows["query_trades_recent"] = _timed(
            newest(lambda s: warm.trades("binance", s, None, None, limit=500, newest_first=True))
        )
        con = warm.reader()
        files = f"{work}/lake/trades/**/*.parquet"  # a path of ours: no quoting to escape
        con.execute(
            f"CREATE TEMP VIEW lake_trades AS SELECT * FROM "
            f"read_parquet('{files}', hive_partitioning = false)"
        )
        sql = (
            "SELECT * FROM lake_trades WHERE exchange = 'binance' AND symbol = ? "
            "ORDER BY ts_event DESC, trade_id DESC LIMIT 500"
        )
        rows["query_lake_view"] = _timed(newest(lambda s: con.execute(sql, [s]).fetchall()))
        for symbol in symbols:  # the two reads are only comparable if they give the same trades
            table = warm.trades("binance", symbol, None, None, limit=500, newest_first=True)
            view = con.execute(sql, [symbol]).fetchall()
            if [t.trade_id for t in table] != [row[2] for row in view]:
                raise SystemExit(f"{symbol}: the lake view's newest trades differ")
        con.close()
        warm.close()
    queries = len(symbols) * 10
    print(f"{n:,} trades, {len(symbols)} symbols, {BATCH:,}-trade batches")
    print(f"{'step':22s} {'CPU s':>7s} {'wall s':>7s}  per unit")
    for step, (cpu, wall) in rows.items():
        unit = (f"{cpu / queries * 1e3:.2f} ms CPU/query" if step.startswith("query")
                else f"{cpu / n * 1e6:.3f} µs CPU/trade")  # fmt: skip
        print(f"{step:22s} {cpu:7.3f} {wall:7.3f}  {unit}")


if __name__ == "__main__":
    main()
