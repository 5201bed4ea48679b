"""Lifecycle over the embedded DuckDB warm store (`LifecycleWarm`).

Runs on the store's own connection under its commit lock, so it can run inside a live
`marketpipe run` between micro-batches. Raw trades leave the warm store only once the lake
holds them (their batch was exported), so retention never loses a trade.
"""

from typing import Any

import duckdb
import pyarrow as pa

from marketpipe.model.errors import StorageError
from marketpipe.model.schemas import CANDLE_SCHEMA, MARKET_SNAPSHOT_SCHEMA
from marketpipe.storage.duckdb_schema import TABLES
from marketpipe.storage.duckdb_warm import DuckDBWarehouse

_EXPORTED = "(SELECT coalesce(max(to_seq), 0) FROM lake_exports WHERE done)"


class DuckDBLifecycle:
    def __init__(self, warehouse: DuckDBWarehouse) -> None:
        self.warehouse = warehouse
        self._rows("SELECT 1")  # opens fine
        for table in ("lake_archive", "market_snapshots", "market_archive"):
            self._rows(TABLES[table])  # data dirs older than these tables

    def _rows(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.warehouse._lock:
            try:
                return self.warehouse._con.execute(sql, params).fetchall()
            except duckdb.Error as exc:
                raise StorageError(f"warm store lifecycle failed: {exc}") from None

    def candle_days(self) -> list[int]:
        rows = self._rows(
            "SELECT DISTINCT epoch_us(date_trunc('day', open_time)) AS d FROM candles ORDER BY d"
        )
        return [int(r[0]) for r in rows]

    def candle_table(self, *, interval: str | None, start: int | None, end: int | None) -> pa.Table:
        where, params = ["true"], []
        for clause, value in (
            ("interval = ?", interval),
            ("open_time >= make_timestamptz(?::BIGINT)", start),
            ("open_time < make_timestamptz(?::BIGINT)", end),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = (
            f"SELECT * FROM candles WHERE {' AND '.join(where)} "
            "ORDER BY interval, exchange, symbol, open_time"
        )
        with self.warehouse._lock:
            try:
                table = self.warehouse._con.sql(sql, params=params).to_arrow_table()
            except duckdb.Error as exc:
                raise StorageError(f"warm store lifecycle failed: {exc}") from None
        return table.cast(CANDLE_SCHEMA)

    def archived_days(self) -> set[int]:
        return {int(r[0]) for r in self._rows("SELECT epoch_us(day) FROM lake_archive")}

    def mark_archived(self, day_us: int, candles: int) -> None:
        self._rows(
            "INSERT OR REPLACE INTO lake_archive VALUES (make_timestamptz(?::BIGINT), ?, now())",
            [day_us, candles],
        )

    def snapshot_days(self) -> dict[int, int]:
        rows = self._rows(
            "SELECT epoch_us(date_trunc('day', ts_source)) AS d, count(*) FROM market_snapshots "
            "GROUP BY d"
        )
        return {int(d): int(n) for d, n in rows}

    def snapshot_table(self, *, start: int, end: int) -> pa.Table:
        sql = (
            "SELECT * FROM market_snapshots WHERE ts_source >= make_timestamptz(?::BIGINT) "
            "AND ts_source < make_timestamptz(?::BIGINT) "
            "ORDER BY source, asset, ts_source, vs_currency"
        )
        with self.warehouse._lock:
            try:
                table = self.warehouse._con.sql(sql, params=[start, end]).to_arrow_table()
            except duckdb.Error as exc:
                raise StorageError(f"warm store lifecycle failed: {exc}") from None
        return table.cast(MARKET_SNAPSHOT_SCHEMA)

    def archived_snapshot_days(self) -> dict[int, int]:
        rows = self._rows("SELECT epoch_us(day), snapshots FROM market_archive")
        return {int(d): int(n) for d, n in rows}

    def mark_snapshots_archived(self, day_us: int, snapshots: int) -> None:
        self._rows(
            "INSERT OR REPLACE INTO market_archive VALUES (make_timestamptz(?::BIGINT), ?, now())",
            [day_us, snapshots],
        )

    def apply_retention(self, cutoff_us: int) -> dict[str, int]:
        cutoff = "make_timestamptz(?::BIGINT)"
        statements = {
            "trades_recent": f"ts_event < {cutoff} AND batch_seq <= {_EXPORTED}",
            "late_trades": f"ts_event < {cutoff} AND batch_seq <= {_EXPORTED}",
            "candles": f"close_time <= {cutoff}",
            "alerts": f"ts < {cutoff}",
            "dead_letters": f"ts < {cutoff}",
            "market_snapshots": f"ts_source < {cutoff}",
        }
        removed = {}
        with self.warehouse._lock:
            con = self.warehouse._con
            con.execute("BEGIN TRANSACTION")
            try:
                for table, condition in statements.items():
                    rows = con.execute(
                        f"DELETE FROM {table} WHERE {condition}", [cutoff_us]
                    ).fetchall()
                    removed[table] = int(rows[0][0]) if rows else 0
                con.execute("COMMIT")
            except duckdb.Error as exc:
                con.execute("ROLLBACK")
                raise StorageError(f"warm retention failed: {exc}") from None
        return removed
