"""The embedded warm store: one DuckDB file, one transaction per micro-batch."""

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pyarrow as pa

from marketpipe.model.batch import CommitBatch
from marketpipe.model.errors import StorageError
from marketpipe.model.records import Candle, Position
from marketpipe.model.schemas import (
    ALERT_SCHEMA,
    CANDLE_SCHEMA,
    DEAD_LETTER_SCHEMA,
    MARKET_SNAPSHOT_SCHEMA,
    QUOTE_SCHEMA,
    TRADE_SCHEMA,
    from_table,
    to_table,
)
from marketpipe.storage.duckdb_schema import TABLES
from marketpipe.storage.market_keys import first_per_key
from marketpipe.storage.sql_dialect import DUCKDB
from marketpipe.storage.sql_tier import SqlReads

_TRADE_COLUMNS = ", ".join(TRADE_SCHEMA.names)


def _run(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None
) -> list[Any]:
    """Execute and drain: DuckDB 2 refuses new work while a result is unread."""
    return con.execute(sql, params).fetchall()


class DuckDBWarehouse(SqlReads):
    """Warm tier of embedded mode. Thread-safe: one connection behind a lock. Candles, trades,
    alerts, quotes and counts are read as `SqlReads` says, in DuckDB's dialect."""

    dialect = DUCKDB

    def __init__(
        self,
        path: Path,
        *,
        read_only: bool = False,
        threads: int | None = None,
        memory_limit_mb: int | None = None,
    ) -> None:
        self.path = path
        try:
            if not read_only:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._con = duckdb.connect(str(path), read_only=read_only)
        except (duckdb.IOException, OSError) as exc:  # OSError: e.g. a read-only data dir
            raise StorageError(f"cannot open warm store {path}: {exc}") from None
        _run(self._con, "SET TimeZone = 'UTC'")
        if memory_limit_mb is not None:
            # DuckDB's default (80 % of RAM) lets its block cache grow with the table: a
            # live process would grow without bound. Bigger queries spill to disk instead.
            _run(self._con, f"SET memory_limit = '{int(memory_limit_mb)}MB'")
        if threads is not None:
            # Micro-batch inserts gain nothing from a thread pool; its hand-offs cost a third
            # of an insert's CPU and add latency to every small commit.
            _run(self._con, f"SET threads = {int(threads)}")
        self._lock = threading.Lock()
        # Lake exports read on their own connection (same database, MVCC), so reading half a
        # million rows back never holds the writer's lock.
        self._reader = self._con.cursor()
        _run(self._reader, "SET TimeZone = 'UTC'")
        self._reader_lock = threading.Lock()
        if not read_only:
            for ddl in TABLES.values():
                _run(self._con, ddl)
        self._seq = int(_run(self._con, "SELECT coalesce(max(seq), 0) FROM batches")[0][0])

    def close(self) -> None:
        with self._lock, self._reader_lock:
            self._reader.close()
            self._con.close()

    def reader(self) -> duckdb.DuckDBPyConnection:
        """A second connection to this database for long reads (e.g. dbt's snapshot): it sees
        a consistent snapshot and never holds the commit lock. The caller closes it."""
        with self._lock:
            return self._con.cursor()

    # ---- writes --------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The highest batch sequence number committed."""
        return self._seq

    def commit(self, batch: CommitBatch, seq: int | None = None) -> int:
        """Commit one micro-batch atomically; returns its batch sequence number (`seq`, when
        given: the commit log's, which must be above every one committed before)."""
        if batch.is_empty and seq is None:
            return self._seq
        with self._lock:
            con = self._con
            if seq is None:
                seq = self._seq + 1
            elif seq <= self._seq:
                raise StorageError(f"batch {seq} is not after the last committed ({self._seq})")
            _run(con, "BEGIN TRANSACTION")
            try:
                self._write(con, batch, seq)
                _run(
                    con,
                    "INSERT INTO batches VALUES (?, now(), ?, ?)",
                    [seq, batch.trades.num_rows, len(batch.candles)],
                )
                _run(con, "COMMIT")
            except Exception as exc:
                # A COMMIT that failed (e.g. the disk is full) has already ended the
                # transaction; ROLLBACK would then raise and hide the real error.
                with contextlib.suppress(duckdb.Error):
                    _run(con, "ROLLBACK")
                raise StorageError(f"batch commit failed and was rolled back: {exc}") from exc
            self._seq = seq
            return seq

    @staticmethod
    def _write(con: duckdb.DuckDBPyConnection, batch: CommitBatch, seq: int) -> None:
        def insert(verb: str, table: str, rows: pa.Table, columns: str = "*") -> None:
            con.register("_batch_rows", rows)
            try:
                _run(con, f"{verb} INTO {table} SELECT {columns} FROM _batch_rows")
            finally:
                con.unregister("_batch_rows")

        if batch.trades.num_rows:
            insert("INSERT", "trades_recent", batch.trades, f"{_TRADE_COLUMNS}, {seq}")
        if batch.late_trades.num_rows:
            insert("INSERT", "late_trades", batch.late_trades, f"{_TRADE_COLUMNS}, {seq}")
        if batch.candles:
            insert("INSERT OR REPLACE", "candles", to_table(batch.candles, CANDLE_SCHEMA))
        if batch.alerts:
            insert("INSERT OR IGNORE", "alerts", to_table(batch.alerts, ALERT_SCHEMA))
        if batch.quotes:
            latest = {(q.exchange, q.symbol): q for q in batch.quotes}
            insert("INSERT OR REPLACE", "quotes", to_table(list(latest.values()), QUOTE_SCHEMA))
        if batch.dead_letters:
            insert("INSERT", "dead_letters", to_table(batch.dead_letters, DEAD_LETTER_SCHEMA))
        if batch.positions:
            insert("INSERT OR REPLACE", "positions", _positions_table(batch.positions))
        if batch.snapshots:
            snapshots = to_table(first_per_key(batch.snapshots), MARKET_SNAPSHOT_SCHEMA)
            insert("INSERT OR IGNORE", "market_snapshots", snapshots)

    # ---- reads ---------------------------------------------------------------------------

    def _arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        with self._lock:
            try:
                return self._con.sql(sql, params=list(params)).to_arrow_table()
            except duckdb.Error as exc:
                raise StorageError(f"warm store query failed: {exc}") from None

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return _run(self._con, sql, list(params))
            except duckdb.Error as exc:
                raise StorageError(f"warm store query failed: {exc}") from None

    def positions(self) -> list[Position]:
        table = self._arrow(
            "SELECT * EXCLUDE (updated_at) FROM positions ORDER BY exchange, symbol"
        )
        rows = table.to_pylist()
        for row in rows:
            row["id_ranges"] = [tuple(r) for r in msgspec.json.decode(row["id_ranges"])]
        return [Position(**row) for row in rows]

    def open_windows(self, min_close_time: int) -> list[tuple[Candle, int, int]]:
        """Candles that may still change, with the event times of their first and last trades
        (the order keys the candle monoid needs)."""
        oldest_close = DUCKDB.ts_from_us.format(int(min_close_time))
        table = self._arrow(
            f"""
            WITH c AS (SELECT * FROM candles WHERE close_time > {oldest_close}),
            t AS (
                SELECT exchange, symbol, trade_id, epoch_us(ts_event) AS ts FROM trades_recent
                WHERE ts_event >= (SELECT coalesce(min(open_time), now()) FROM c)
            )
            SELECT c.*, coalesce(o.ts, epoch_us(c.open_time)) AS open_ts,
                   coalesce(l.ts, epoch_us(c.close_time) - 1) AS close_ts
            FROM c
            LEFT JOIN t o
                ON o.exchange = c.exchange AND o.symbol = c.symbol AND o.trade_id = c.first_trade_id
            LEFT JOIN t l
                ON l.exchange = c.exchange AND l.symbol = c.symbol AND l.trade_id = c.last_trade_id
            """
        )
        open_ts = table.column("open_ts").to_pylist()
        close_ts = table.column("close_ts").to_pylist()
        candles = from_table(table.drop_columns(["open_ts", "close_ts"]), Candle)
        return list(zip(candles, open_ts, close_ts, strict=True))

    # ---- lake export bookkeeping ---------------------------------------------------------

    def pending_export(self) -> tuple[int, int] | None:
        """The batch range to export next: an unfinished plan first, else everything new."""
        with self._lock:
            rows = _run(
                self._con,
                "SELECT from_seq, to_seq FROM lake_exports WHERE NOT done "
                "ORDER BY from_seq LIMIT 1",
            )
            if rows:
                return int(rows[0][0]), int(rows[0][1])
            done = _run(self._con, "SELECT coalesce(max(to_seq), 0) FROM lake_exports")
            start = int(done[0][0]) + 1
            if start > self._seq:
                return None
            _run(
                self._con,
                "INSERT INTO lake_exports VALUES (?, ?, false, NULL, NULL)",
                [start, self._seq],
            )
            return start, self._seq

    def export_rows(self, from_seq: int, to_seq: int) -> Iterator[pa.Table]:
        """The plan's trades, one lake partition (exchange, symbol, UTC day) at a time.

        A whole plan is half a million trades by default; read and rewritten at once it
        briefly took ~200 MB more RSS on every export. One partition at a time bounds that by
        the largest partition, at the cost of one more scan of the plan's rows per partition.
        """
        partitions = self._read(
            "SELECT DISTINCT exchange, symbol, CAST(ts_event AS DATE) AS day FROM trades_recent "
            "WHERE batch_seq BETWEEN ? AND ? ORDER BY exchange, symbol, day",
            [from_seq, to_seq],
        ).to_pylist()
        sql = (
            f"SELECT {_TRADE_COLUMNS} FROM trades_recent WHERE batch_seq BETWEEN ? AND ? "
            "AND exchange = ? AND symbol = ? AND CAST(ts_event AS DATE) = ?"
        )
        for p in partitions:
            params = [from_seq, to_seq, p["exchange"], p["symbol"], p["day"]]
            yield self._read(sql, params).cast(TRADE_SCHEMA)

    def _read(self, sql: str, params: list[Any]) -> pa.Table:
        """One query on the export reader's connection (MVCC: never blocks the writer)."""
        with self._reader_lock:
            try:
                return self._reader.sql(sql, params=params).to_arrow_table()
            except duckdb.Error as exc:
                raise StorageError(f"warm store query failed: {exc}") from None

    def pending_trades(self) -> int:
        table = self._arrow(
            "SELECT coalesce(sum(trades), 0) AS n FROM batches "
            "WHERE seq > (SELECT coalesce(max(to_seq), 0) FROM lake_exports WHERE done)"
        )
        return int(table.column("n")[0].as_py())

    def mark_exported(self, from_seq: int, files: int, trades: int) -> None:
        with self._lock:
            _run(
                self._con,
                "UPDATE lake_exports SET done = true, files = ?, trades = ? WHERE from_seq = ?",
                [files, trades, from_seq],
            )


def _positions_table(positions: Sequence[Position]) -> pa.Table:
    now = pa.scalar(int(time.time() * 1e6), type=pa.timestamp("us", tz="UTC"))
    return pa.table(
        {
            "exchange": [p.exchange for p in positions],
            "symbol": [p.symbol for p in positions],
            "last_trade_id": pa.array([p.last_trade_id for p in positions], pa.int64()),
            "max_ts_event": pa.array([p.max_ts_event for p in positions], pa.int64()),
            "id_ranges": [msgspec.json.encode(p.id_ranges).decode() for p in positions],
            "gaps_found": pa.array([p.gaps_found for p in positions], pa.int64()),
            "gaps_filled": pa.array([p.gaps_filled for p in positions], pa.int64()),
            "trades_seen": pa.array([p.trades_seen for p in positions], pa.int64()),
            "duplicates": pa.array([p.duplicates for p in positions], pa.int64()),
            "updated_at": pa.array([now] * len(positions), pa.timestamp("us", tz="UTC")),
        }
    )
