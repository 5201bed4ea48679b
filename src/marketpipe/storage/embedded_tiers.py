"""Embedded mode's tiers behind the router's `Tier` protocol: memory, DuckDB and Parquet.

The memory hot tier is a `Tier` itself; the warm and lake tiers here are read adapters over
the stores the pipeline writes, and never write. SQL uses bound
parameters only; column lists and orderings are fixed strings chosen here, never user input.
"""

import threading
import time
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from marketpipe.model.errors import StorageError
from marketpipe.model.intervals import INTERVAL_US
from marketpipe.model.records import Alert, Candle, Trade
from marketpipe.model.schemas import from_table
from marketpipe.storage.duckdb_warm import DuckDBWarehouse
from marketpipe.storage.embedded import EmbeddedStore
from marketpipe.storage.lake import ParquetLake
from marketpipe.storage.router import TierRouter
from marketpipe.storage.sql_dialect import DUCKDB
from marketpipe.storage.sql_tier import SqlWarmTier
from marketpipe.storage.tiers import Series, TimeRange, window


class WarmDuckDBTier(SqlWarmTier):
    """The DuckDB warm store. Reads (the warehouse's own, `SqlReads`) go through per-thread
    cursors of the store's database here, so API reads run in parallel with each other and
    never wait on the pipeline's commit lock."""

    def __init__(self, warehouse: DuckDBWarehouse, coverage_ttl_s: float = 2.0) -> None:
        super().__init__(DUCKDB, coverage_ttl_s)
        self.warehouse = warehouse
        self._local = threading.local()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self.warehouse.reader()
            cursor.execute("SET TimeZone = 'UTC'")
            self._local.cursor = cursor
        return cursor

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            return self._cursor().execute(sql, list(params)).fetchall()
        except duckdb.Error as exc:
            raise StorageError(f"warm store query failed: {exc}") from None


class LakeParquetTier:
    """The Parquet lake: every raw trade ever exported. Candles are computed from those trades
    (the candle monoid makes that exact); it holds no alerts."""

    name = "lake"

    def __init__(self, lake: ParquetLake, coverage_ttl_s: float = 30.0) -> None:
        self.lake = lake
        self.coverage_ttl_s = coverage_ttl_s
        self._span: dict[tuple[str, str], tuple[float, TimeRange | None]] = {}

    def coverage(self, series: Series) -> TimeRange | None:
        if series.kind == "alerts" or series.symbol is None:
            return None
        key = (series.exchange, series.symbol)
        cached = self._span.get(key)
        now = time.monotonic()
        if cached is None or now - cached[0] >= self.coverage_ttl_s:
            times = self.lake.read_trades(exchange=series.exchange, symbol=series.symbol)
            column = times.column("ts_event").cast(pa.int64())
            span = (
                TimeRange(int(column[0].as_py()), int(column[-1].as_py()))
                if times.num_rows
                else None
            )
            cached = (now, span)
            self._span[key] = cached
        if cached[1] is None:
            return None
        oldest, newest = cached[1].start, cached[1].end
        if series.kind == "candles":
            step = INTERVAL_US.get(series.interval, 1)
            return TimeRange(oldest - oldest % step, newest - newest % step + step)
        return TimeRange(oldest, newest + 1)

    def _trades_table(
        self, exchange: str, symbol: str, start: int | None, end: int | None
    ) -> pa.Table:
        return self.lake.read_trades(exchange=exchange, symbol=symbol, start=start, end=end)

    def trades(
        self, exchange: str, symbol: str, start: int | None, end: int | None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> list[Trade]:  # fmt: skip
        trades = from_table(self._trades_table(exchange, symbol, start, end), Trade)
        return window(trades, lambda t: t.ts_event, None, None, limit, newest_first)

    def candles(
        self, exchange: str, symbol: str, interval: str, start: int | None, end: int | None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> list[Candle]:  # fmt: skip
        width = INTERVAL_US[interval]
        # Whole windows only: widen to window edges so a window's trades are all counted.
        lo = None if start is None else start - start % width
        table = self._trades_table(exchange, symbol, lo, end)
        if not table.num_rows:
            return []
        con = duckdb.connect()
        try:
            con.register("t", table)
            rows = con.execute(
                """
                SELECT exchange, symbol, ?::VARCHAR, w, w + ?,
                    arg_min(price, (ts, trade_id)), max(price), min(price),
                    arg_max(price, (ts, trade_id)), sum(qty), sum(price * qty), count(*),
                    coalesce(sum(qty) FILTER (WHERE side = 'buy'), 0),
                    coalesce(sum(price * qty) FILTER (WHERE side = 'buy'), 0),
                    sum(price * qty) / nullif(sum(qty), 0),
                    arg_min(trade_id, (ts, trade_id)), arg_max(trade_id, (ts, trade_id)),
                    true, 0
                FROM (SELECT *, epoch_us(ts_event) AS ts, epoch_us(ts_event) // ? * ? AS w FROM t)
                GROUP BY exchange, symbol, w ORDER BY w
                """,
                [interval, width, width, width],
            ).fetchall()
        finally:
            con.close()
        candles = [Candle(*row[:14], row[14] or 0.0, *row[15:]) for row in rows]  # type: ignore[call-arg]
        return window(candles, lambda c: c.open_time, start, end, limit, newest_first)

    def alerts(
        self, exchange: str | None, symbol: str | None, start: int | None, end: int | None,
        *, kind: str | None = None, limit: int | None = None, newest_first: bool = False,
    ) -> list[Alert]:  # fmt: skip
        return []


def embedded_router(store: EmbeddedStore) -> TierRouter:
    """Hot, warm and lake of one embedded data dir, hottest first."""
    return TierRouter([store.hot, WarmDuckDBTier(store.warm), LakeParquetTier(store.lake)])
