"""Embedded mode's dbt inputs: the warm tables copied to Parquet from one read snapshot.

The pipeline holds `warm.duckdb` as DuckDB's single writer, so dbt never opens it. Instead
this copies the tables dbt reads through a second connection of the pipeline's own DuckDB
instance: MVCC gives one consistent snapshot of all tables, and the copy never takes the
commit lock, so batches keep committing while it runs.
"""

import time
from dataclasses import dataclass
from pathlib import Path

from marketpipe.storage.embedded import EmbeddedStore

# Every warm table the dbt sources read (macros/warm_sources.sql); raw payloads stay behind.
# Raw trades are the big one: see `trades_since_us`.
SNAPSHOT_TABLES: dict[str, str] = {
    "trades_recent": "SELECT * FROM trades_recent WHERE ts_event >= make_timestamptz({since})",
    "candles": "SELECT * FROM candles",
    "alerts": "SELECT * FROM alerts",
    "quotes": "SELECT * FROM quotes",
    "positions": "SELECT * FROM positions",
    "late_trades": "SELECT * FROM late_trades",
    "dead_letters": "SELECT * EXCLUDE (raw) FROM dead_letters",
    "market_snapshots": "SELECT * FROM market_snapshots",
}


@dataclass(frozen=True, slots=True)
class WarmSnapshot:
    directory: Path
    # The first event time the warm trades hold (µs); older trades come from the lake.
    warm_trades_since_us: int
    # The lake's trade files as a glob, or "" while the lake holds none.
    lake_trades_glob: str
    seconds: float


def snapshot_warm(
    store: EmbeddedStore, directory: Path, trades_since_us: int | None = None
) -> WarmSnapshot:
    """Write `{directory}/{table}.parquet` for every dbt source table, atomically per file.

    `trades_since_us`: copy only raw trades from then on. Incremental dbt runs re-read only
    their trailing lookback, so copying the whole warm store (90 days) every few minutes
    would be wasted work; None copies every warm trade (first build, full refresh).
    """
    started = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    con = store.warm.reader()
    try:
        con.execute("BEGIN TRANSACTION")
        oldest = con.execute(
            "SELECT coalesce(epoch_us(min(ts_event)), 9223372036854775807) FROM trades_recent"
        ).fetchall()[0][0]
        # Older trades than this come from the lake (or, incremental, are not needed at all).
        since = int(oldest) if trades_since_us is None else max(int(oldest), trades_since_us)
        for name, template in SNAPSHOT_TABLES.items():
            query = template.format(since=f"{since}::BIGINT")
            temporary = directory / f".{name}.parquet.tmp"
            con.execute(
                f"COPY ({query}) TO '{temporary}' (FORMAT parquet, COMPRESSION zstd)"
            ).fetchall()
            temporary.replace(directory / f"{name}.parquet")
        con.execute("COMMIT")
    finally:
        con.close()
    lake = store.dirs.lake.absolute() / "trades"  # dbt reads it from another directory
    has_files = any(lake.glob("*/*/*/part-*.parquet")) if lake.is_dir() else False
    return WarmSnapshot(
        directory=directory,
        warm_trades_since_us=since,
        lake_trades_glob=f"{lake}/*/*/*/part-*.parquet" if has_files else "",
        seconds=time.perf_counter() - started,
    )
