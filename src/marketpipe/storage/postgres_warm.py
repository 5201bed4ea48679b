"""The cluster warm store: PostgreSQL, one transaction per micro-batch, exactly once.

Semantics mirror DuckDBWarehouse: raw trades insert-or-ignore (by trade key), candles replace
(full values, so a revision simply overwrites), alerts insert-or-ignore by alert_id, quotes and
positions replace. On top of that, a batch's Kafka offsets commit in the same transaction as its
output (`commit`), or a Spark micro-batch is applied at most once per (query, batch_id)
(`commit_fenced`). Re-committing a batch changes nothing.

Consumers are fenced by partition epochs: `claim_partitions` bumps the epoch of each partition
a member is assigned, and a `commit(..., fence=...)` lands only while those epochs are still
the ones it claimed, so a member that missed a rebalance (paused past its poll interval)
cannot overwrite what the new owner wrote.
"""

import logging
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import Cursor
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolTimeout

from marketpipe.model.batch import CommitBatch
from marketpipe.model.errors import FencedOut, StorageError
from marketpipe.model.records import Candle, Position
from marketpipe.model.schemas import (
    ALERT_SCHEMA,
    CANDLE_SCHEMA,
    MARKET_SNAPSHOT_SCHEMA,
    TRADE_SCHEMA,
    to_table,
)
from marketpipe.observability import metrics as m
from marketpipe.storage import postgres_fences as fences
from marketpipe.storage import postgres_schema as schema
from marketpipe.storage.market_keys import first_per_key
from marketpipe.storage.postgres_copy import copy_in, insert_select, select_list, staging_ddl
from marketpipe.storage.sql_dialect import POSTGRES
from marketpipe.storage.sql_tier import SqlReads, position_from_row

log = logging.getLogger(__name__)

Connection = psycopg.Connection[TupleRow]
SymbolKey = tuple[str, str]  # (exchange, symbol)

_STAGING = {
    "_stage_trades": TRADE_SCHEMA,
    "_stage_late": TRADE_SCHEMA,
    "_stage_candles": CANDLE_SCHEMA,
    "_stage_alerts": ALERT_SCHEMA,
    "_stage_snapshots": MARKET_SNAPSHOT_SCHEMA,
}
_SNAPSHOT_KEY = ("source", "asset", "vs_currency", "ts_source")
_CANDLE_KEY = ("exchange", "symbol", "interval", "open_time")
_TRADE_KEY = ("exchange", "symbol", "trade_id")
_CANDLE_VALUES = [f.name for f in CANDLE_SCHEMA if f.name not in _CANDLE_KEY]
_POSITION_COLUMNS = (
    "exchange, symbol, last_trade_id, max_ts_event, id_ranges, gaps_found, gaps_filled, "
    "trades_seen, duplicates"
)


def describe(dsn: str) -> str:
    """host:port/dbname of a DSN, without credentials (for messages and logs)."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(unparseable DSN)"
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


class PostgresWarehouse(SqlReads):
    """Warm tier of cluster mode. Thread-safe: a small connection pool; a connection lost to a
    server restart is replaced on the next call (which raises StorageError until then).
    Candles, trades, alerts, quotes and counts are read as `SqlReads` says."""

    dialect = POSTGRES
    stores_market_snapshots = True  # the archive role consumes marketpipe.market into it

    def __init__(self, dsn: str, *, pool_size: int = 4, timeout_s: float = 10.0) -> None:
        self.dsn = dsn
        self.where = describe(dsn)
        self._pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            timeout=timeout_s,
            kwargs={"connect_timeout": max(1, int(timeout_s)), "autocommit": True},
            configure=self._configure,
            check=ConnectionPool.check_connection,
            open=True,
            name="marketpipe-warm",
        )
        self._partitions: set[int] = set()  # day partitions known to exist
        self._partitions_lock = threading.Lock()

    @staticmethod
    def _configure(conn: Connection) -> None:
        conn.execute("SET TimeZone = 'UTC'")
        for name, table_schema in _STAGING.items():
            conn.execute(staging_ddl(name, table_schema).encode())

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _conn(self) -> Iterator[Connection]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise StorageError(f"PostgreSQL at {self.where} is unreachable: {exc}") from None
        except psycopg.OperationalError as exc:
            raise StorageError(f"PostgreSQL at {self.where} failed: {exc}") from exc

    def migrate(self) -> None:
        """Create or upgrade the schema (idempotent; safe to call from every process)."""
        with self._conn() as conn:
            applied = schema.migrate(conn)
        if applied:
            log.info("warm store migrated", extra={"versions": applied, "at": self.where})

    # ---- writes --------------------------------------------------------------------------

    def claim_partitions(
        self, consumer_group: str, partitions: Collection[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        """Take ownership of `partitions` {(topic, partition)} for `consumer_group`: each one's
        epoch goes up by one (the first claim gives 1), in one transaction; returns the new
        epochs. A consumer calls it on every assignment, before it reads."""
        with self._conn() as conn:
            try:
                return fences.claim(conn, consumer_group, partitions)
            except psycopg.Error as exc:
                raise StorageError(f"claiming partitions failed: {exc}") from exc

    def commit(
        self,
        batch: CommitBatch,
        *,
        consumer_group: str | None = None,
        offsets: Mapping[tuple[str, int], int] | None = None,
        fence: Mapping[tuple[str, int], int] | None = None,
    ) -> None:
        """Write the whole batch and the Kafka offsets `{(topic, partition): next_offset}` of
        `consumer_group` in one transaction: both land, or neither.

        With `fence` {(topic, partition): epoch}, the same transaction first locks those
        partitions' epoch rows and checks that each still holds the given epoch; if one was
        claimed since (or was never claimed), everything rolls back, the refusal is counted
        and FencedOut is raised (not retried: the partition belongs to another member)."""
        if (offsets or fence) and consumer_group is None:
            raise ValueError("offsets and fence need a consumer_group")
        if batch.is_empty and not offsets:
            return
        with self._conn() as conn:
            self._ensure_partitions(conn, batch.trades)
            try:
                with conn.transaction(), conn.cursor() as cur:
                    if fence:
                        assert consumer_group is not None
                        fences.check(cur, consumer_group, fence)
                    self._write(cur, batch)
                    if offsets:
                        assert consumer_group is not None
                        _store_offsets(cur, consumer_group, offsets)
            except FencedOut:
                m.COMMITS_FENCED.labels("postgres", consumer_group).inc()
                raise
            except Exception as exc:
                raise StorageError(f"batch commit failed and was rolled back: {exc}") from exc

    def commit_fenced(self, batch: CommitBatch, *, fence: tuple[str, int]) -> bool:
        """Apply a Spark micro-batch `fence = (query_name, batch_id)` at most once: in one
        transaction, unless that query already applied this batch id or a later one.
        Returns False if skipped."""
        query_name, batch_id = fence
        with self._conn() as conn:
            self._ensure_partitions(conn, batch.trades)
            try:
                with conn.transaction(), conn.cursor() as cur:
                    if not fences.take_batch(cur, query_name, batch_id):
                        return False
                    self._write(cur, batch)
                    return True
            except Exception as exc:
                raise StorageError(f"fenced commit failed and was rolled back: {exc}") from exc

    def _ensure_partitions(self, conn: Connection, trades: pa.Table) -> None:
        if not trades.num_rows:
            return
        micros = trades.column("ts_event").cast(pa.int64())
        day_numbers = pc.unique(pc.divide(micros, schema.DAY_US)).to_pylist()
        days = {int(n) * schema.DAY_US for n in day_numbers}
        with self._partitions_lock:
            missing = days - self._partitions
        if missing:
            try:
                schema.create_partitions(conn, missing)
            except psycopg.Error as exc:
                raise StorageError(f"cannot create trade partitions: {exc}") from exc
            with self._partitions_lock:
                self._partitions |= missing

    def _write(self, cur: Cursor[TupleRow], batch: CommitBatch) -> None:
        row = cur.execute("SELECT nextval('batch_seq')").fetchone()
        assert row is not None
        seq = int(row[0])
        if batch.trades.num_rows:
            copy_in(cur, "_stage_trades", batch.trades.select(TRADE_SCHEMA.names))
            cur.execute(
                "INSERT INTO trades_recent "
                f"{insert_select(TRADE_SCHEMA, '_stage_trades', _TRADE_KEY, [str(seq)])} "
                "ON CONFLICT DO NOTHING"
            )
        if batch.late_trades.num_rows:
            copy_in(cur, "_stage_late", batch.late_trades.select(TRADE_SCHEMA.names))
            rows = insert_select(TRADE_SCHEMA, "_stage_late", _TRADE_KEY, [str(seq)])
            cur.execute(f"INSERT INTO late_trades {rows} ON CONFLICT DO NOTHING")
        if batch.candles:
            # One row per key (the last value wins), as ON CONFLICT may touch a row only once.
            latest = {(c.exchange, c.symbol, c.interval, c.open_time): c for c in batch.candles}
            copy_in(cur, "_stage_candles", to_table(list(latest.values()), CANDLE_SCHEMA))
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _CANDLE_VALUES)
            rows = insert_select(CANDLE_SCHEMA, "_stage_candles", _CANDLE_KEY)
            cur.execute(
                f"INSERT INTO candles {rows} "
                f"ON CONFLICT ({', '.join(_CANDLE_KEY)}) DO UPDATE SET {updates}"
            )
        if batch.alerts:
            copy_in(cur, "_stage_alerts", to_table(batch.alerts, ALERT_SCHEMA))
            cur.execute(
                f"INSERT INTO alerts {insert_select(ALERT_SCHEMA, '_stage_alerts', ['alert_id'])} "
                "ON CONFLICT DO NOTHING"
            )
        if batch.quotes:
            latest_quotes = {(q.exchange, q.symbol): q for q in batch.quotes}
            cur.executemany(
                "INSERT INTO quotes VALUES (%s, %s, %s, %s, %s, %s, mp_ts(%s), mp_ts(%s)) "
                "ON CONFLICT (exchange, symbol) DO UPDATE SET bid = EXCLUDED.bid, "
                "bid_qty = EXCLUDED.bid_qty, ask = EXCLUDED.ask, ask_qty = EXCLUDED.ask_qty, "
                "ts_event = EXCLUDED.ts_event, ts_recv = EXCLUDED.ts_recv",
                [msgspec.structs.astuple(q) for q in latest_quotes.values()],
            )
        if batch.dead_letters:
            cur.executemany(
                "INSERT INTO dead_letters VALUES (mp_ts(%s), %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                [(d.ts, d.source, d.error, d.raw, d.context) for d in batch.dead_letters],
            )
        if batch.positions:
            _store_positions(cur, batch.positions)
        if batch.snapshots:
            snapshots = to_table(first_per_key(batch.snapshots), MARKET_SNAPSHOT_SCHEMA)
            copy_in(cur, "_stage_snapshots", snapshots)
            rows = insert_select(MARKET_SNAPSHOT_SCHEMA, "_stage_snapshots", _SNAPSHOT_KEY)
            cur.execute(f"INSERT INTO market_snapshots {rows} ON CONFLICT DO NOTHING")
        cur.execute(
            "INSERT INTO batches VALUES (%s, now(), %s, %s)",
            [seq, batch.trades.num_rows, len(batch.candles)],
        )

    # ---- offsets -------------------------------------------------------------------------

    def load_offsets(self, consumer_group: str, topic: str) -> dict[int, int]:
        """{partition: next offset to consume} stored by `consumer_group` for `topic`."""
        rows = self.rows(
            "SELECT partition, next_offset FROM consumer_offsets "
            "WHERE consumer_group = %s AND topic = %s",
            [consumer_group, topic],
        )
        return {int(p): int(o) for p, o in rows}

    def fence(self, query_name: str) -> int | None:
        """The last batch id `query_name` applied, if any."""
        rows = self.rows(
            "SELECT batch_id FROM batch_fences WHERE query_name = %s AND batch_id >= 0",
            [query_name],
        )
        return int(rows[0][0]) if rows else None

    # ---- restore -------------------------------------------------------------------------

    def positions(self, keys: Collection[SymbolKey] | None = None) -> list[Position]:
        where, params = _keys_filter(keys, "")
        rows = self.rows(
            f"SELECT {_POSITION_COLUMNS} FROM positions WHERE {where} ORDER BY exchange, symbol",
            params,
        )
        return [position_from_row(row) for row in rows]

    def open_windows(
        self, min_close_time: int, keys: Collection[SymbolKey] | None = None
    ) -> list[tuple[Candle, int, int]]:
        """Candles that may still change, with the event times of their first and last trades
        (the order keys the candle monoid needs); as DuckDBWarehouse.open_windows."""
        where, params = _keys_filter(keys, "c.")
        rows = self.rows(
            f"""
            SELECT {select_list(CANDLE_SCHEMA, "c")},
                   coalesce(o.ts, mp_us(c.open_time)), coalesce(l.ts, mp_us(c.close_time) - 1)
            FROM candles c
            LEFT JOIN LATERAL (
                SELECT mp_us(t.ts_event) AS ts FROM trades_recent t
                WHERE t.exchange = c.exchange AND t.symbol = c.symbol
                  AND t.trade_id = c.first_trade_id
                  AND t.ts_event >= c.open_time AND t.ts_event < c.close_time
            ) o ON true
            LEFT JOIN LATERAL (
                SELECT mp_us(t.ts_event) AS ts FROM trades_recent t
                WHERE t.exchange = c.exchange AND t.symbol = c.symbol
                  AND t.trade_id = c.last_trade_id
                  AND t.ts_event >= c.open_time AND t.ts_event < c.close_time
            ) l ON true
            WHERE c.close_time > mp_ts(%s) AND {where}
            """,
            [min_close_time, *params],
        )
        return [(Candle(*row[:-2]), int(row[-2]), int(row[-1])) for row in rows]

    def restore_state(
        self, *, grace_us: int, allowed_lateness_us: int, keys: Collection[SymbolKey] | None = None
    ) -> tuple[list[Position], list[tuple[Candle, int, int]]]:
        """What CandleEngine.restore needs after a restart (or a partition assignment, with
        `keys` = the symbols of the assigned partitions): positions, and every window that
        may still change, as Pipeline's recovery computes them for DuckDB."""
        positions = self.positions(keys)
        if not positions:
            return [], []
        oldest_watermark = min(p.max_ts_event for p in positions) - grace_us
        return positions, self.open_windows(oldest_watermark - allowed_lateness_us, keys)

    # ---- reads ---------------------------------------------------------------------------

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read query (bound parameters) on a pooled connection."""
        with self._conn() as conn:
            try:
                return conn.execute(sql.encode(), list(params)).fetchall()
            except psycopg.Error as exc:
                raise StorageError(f"warm store query failed: {exc}") from exc

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self.rows(sql, params)

    def candle_table(self, *, interval: str | None, start: int | None, end: int | None) -> pa.Table:
        """Candles of `[start, end)` by open time as an Arrow table (lake archival)."""
        where, params = POSTGRES.filters(None, None, start, end, "open_time")
        if interval:
            where.append("interval = %s")
            params.append(interval)
        rows = self.rows(
            f"SELECT {select_list(CANDLE_SCHEMA)} FROM candles WHERE {' AND '.join(where)} "
            "ORDER BY interval, exchange, symbol, open_time",
            params,
        )
        columns: list[Sequence[Any]] = (
            list(zip(*rows, strict=True)) if rows else [[] for _ in CANDLE_SCHEMA]
        )
        arrays = [
            pa.array(col, pa.int64() if pa.types.is_timestamp(f.type) else f.type)
            for col, f in zip(columns, CANDLE_SCHEMA, strict=True)
        ]
        return pa.Table.from_arrays(arrays, names=CANDLE_SCHEMA.names).cast(CANDLE_SCHEMA)

    # ---- retention -----------------------------------------------------------------------

    def apply_retention(self, cutoff_us: int) -> dict[str, int]:
        """Drop what is older than `cutoff_us`: whole day partitions of raw trades (a partition
        goes once its whole day is past the cutoff), rows of the other time-keyed tables."""
        with self._conn() as conn:
            try:
                dropped = schema.drop_partitions_before(conn, cutoff_us)
                with self._partitions_lock:
                    self._partitions -= {schema.partition_day(n) or 0 for n in dropped}
                removed = {"trades_recent_partitions": len(dropped)}
                with conn.transaction():
                    for table, condition in (
                        ("candles", "close_time <= mp_ts(%s)"),
                        ("alerts", "ts < mp_ts(%s)"),
                        ("late_trades", "ts_event < mp_ts(%s)"),
                        ("dead_letters", "ts < mp_ts(%s)"),
                        ("market_snapshots", "ts_source < mp_ts(%s)"),
                    ):
                        cur = conn.execute(
                            f"DELETE FROM {table} WHERE {condition}".encode(), [cutoff_us]
                        )
                        removed[table] = cur.rowcount
                return removed
            except psycopg.Error as exc:
                raise StorageError(f"warm retention failed: {exc}") from exc

    # ---- lake archival bookkeeping (lifecycle) --------------------------------------------

    def candle_days(self) -> list[int]:
        """UTC days (µs at midnight) that have candles, oldest first."""
        rows = self.rows(
            "SELECT DISTINCT mp_us(date_trunc('day', open_time)) FROM candles ORDER BY 1"
        )
        return [int(r[0]) for r in rows]

    def archived_days(self) -> set[int]:
        return {int(r[0]) for r in self.rows("SELECT mp_us(day) FROM lake_archive")}

    def mark_archived(self, day_us: int, candles: int) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO lake_archive VALUES (mp_ts(%s), %s, now()) ON CONFLICT (day) "
                "DO UPDATE SET candles = EXCLUDED.candles, archived_at = EXCLUDED.archived_at",
                [day_us, candles],
            )

    def snapshot_days(self) -> dict[int, int]:
        """UTC day (µs at midnight) -> how many market snapshots it holds."""
        rows = self.rows(
            "SELECT mp_us(date_trunc('day', ts_source)), count(*) FROM market_snapshots GROUP BY 1"
        )
        return {int(d): int(n) for d, n in rows}

    def snapshot_table(self, *, start: int, end: int) -> pa.Table:
        """Market snapshots with ts_source in `[start, end)` as an Arrow table (lake)."""
        snapshots = self.market_snapshots(None, start, end)
        return to_table(snapshots, MARKET_SNAPSHOT_SCHEMA)

    def archived_snapshot_days(self) -> dict[int, int]:
        rows = self.rows("SELECT mp_us(day), snapshots FROM market_archive")
        return {int(d): int(n) for d, n in rows}

    def mark_snapshots_archived(self, day_us: int, snapshots: int) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO market_archive VALUES (mp_ts(%s), %s, now()) ON CONFLICT (day) "
                "DO UPDATE SET snapshots = EXCLUDED.snapshots, archived_at = EXCLUDED.archived_at",
                [day_us, snapshots],
            )

    def partitions(self) -> list[str]:
        with self._conn() as conn:
            return sorted(schema.existing_partitions(conn).values())


def _store_offsets(
    cur: Cursor[TupleRow], consumer_group: str, offsets: Mapping[tuple[str, int], int]
) -> None:
    cur.executemany(
        "INSERT INTO consumer_offsets VALUES (%s, %s, %s, %s, now()) "
        "ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET "
        "next_offset = EXCLUDED.next_offset, updated_at = EXCLUDED.updated_at",
        [
            (consumer_group, topic, partition, offset)
            for (topic, partition), offset in offsets.items()
        ],
    )


def _store_positions(cur: Cursor[TupleRow], positions: Sequence[Position]) -> None:
    rows = [
        (
            p.exchange, p.symbol, p.last_trade_id, p.max_ts_event,
            msgspec.json.encode(p.id_ranges).decode(), p.gaps_found, p.gaps_filled,
            p.trades_seen, p.duplicates,
        )
        for p in {(p.exchange, p.symbol): p for p in positions}.values()
    ]  # fmt: skip
    values = [c.strip() for c in _POSITION_COLUMNS.split(",")][2:]
    changed = ", ".join(f"positions.{c}" for c in values)
    incoming = ", ".join(f"EXCLUDED.{c}" for c in values)
    # updated_at moves only when something did: re-committing a batch changes nothing.
    cur.executemany(
        f"INSERT INTO positions ({_POSITION_COLUMNS}, updated_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now()) "
        f"ON CONFLICT (exchange, symbol) DO UPDATE SET ({', '.join(values)}, updated_at) = "
        f"({incoming}, now()) WHERE ({changed}) IS DISTINCT FROM ({incoming})",
        rows,
    )


def _keys_filter(keys: Collection[SymbolKey] | None, prefix: str) -> tuple[str, list[Any]]:
    if keys is None:
        return "true", []
    exchanges = [k[0] for k in keys]
    symbols = [k[1] for k in keys]
    return (
        f"({prefix}exchange, {prefix}symbol) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
        [exchanges, symbols],
    )
