"""Embedded mode's tiers behind the router's `Tier` protocol: memory, DuckDB and Parquet.

Thin read adapters over the stores the pipeline writes; they never write. SQL uses bound
parameters only; column lists and orderings are fixed strings chosen here, never user input.
"""

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from marketpipe.model.errors import StorageError
from marketpipe.model.intervals import INTERVAL_US
from marketpipe.model.records import Alert, Candle, Quote, Trade
from marketpipe.model.schemas import from_table
from marketpipe.storage.duckdb_warm import DuckDBWarehouse
from marketpipe.storage.embedded import EmbeddedStore
from marketpipe.storage.hot_memory import MemoryHotTier
from marketpipe.storage.lake import ParquetLake
from marketpipe.storage.router import TierRouter
from marketpipe.storage.tiers import Series, TimeRange

T = TypeVar("T")


def _window(
    items: Sequence[T], key: Callable[[T], int], start: int | None, end: int | None,
    limit: int | None, newest_first: bool,
) -> list[T]:  # fmt: skip
    picked = [
        x for x in items if (start is None or key(x) >= start) and (end is None or key(x) < end)
    ]
    if newest_first:
        picked.reverse()
    return picked if limit is None else picked[:limit]


class HotMemoryTier:
    """The last hour in memory. Holds every candle this process committed since its first one
    per series; no raw trades, and alerts only as a bounded feed (so no coverage for them)."""

    name = "hot"

    def __init__(self, hot: MemoryHotTier) -> None:
        self.hot = hot

    def coverage(self, series: Series) -> TimeRange | None:
        if series.kind != "candles" or series.symbol is None:
            return None
        candles = self.hot.candles(series.exchange, series.symbol, series.interval)
        if not candles:
            return None
        return TimeRange(candles[0].open_time, candles[-1].close_time)

    def candles(
        self, exchange: str, symbol: str, interval: str, start: int | None, end: int | None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> list[Candle]:  # fmt: skip
        series = self.hot.candles(exchange, symbol, interval)
        return _window(series, lambda c: c.open_time, start, end, limit, newest_first)

    def trades(
        self, exchange: str, symbol: str, start: int | None, end: int | None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> list[Trade]:  # fmt: skip
        return []

    def alerts(
        self, exchange: str | None, symbol: str | None, start: int | None, end: int | None,
        *, kind: str | None = None, limit: int | None = None, newest_first: bool = False,
    ) -> list[Alert]:  # fmt: skip
        found = [
            a for a in self.hot.alerts()
            if (exchange is None or a.exchange == exchange)
            and (symbol is None or a.symbol == symbol)
            and (kind is None or a.kind == kind)
        ]  # fmt: skip
        found.sort(key=lambda a: (a.ts, a.alert_id))
        return _window(found, lambda a: a.ts, start, end, limit, newest_first)


_CANDLE_SELECT = (
    "SELECT exchange, symbol, interval, epoch_us(open_time), epoch_us(close_time), open, high, "
    "low, close, volume, quote_volume, trade_count, taker_buy_volume, taker_buy_quote_volume, "
    "vwap, first_trade_id, last_trade_id, is_final, revision FROM candles"
)
_TRADE_SELECT = (
    "SELECT exchange, symbol, trade_id, price, qty, side, epoch_us(ts_event), epoch_us(ts_recv) "
    "FROM trades_recent"
)
_ALERT_SELECT = (
    "SELECT alert_id, kind, severity, exchange, symbol, epoch_us(ts), value, threshold, details "
    "FROM alerts"
)


class WarmDuckDBTier:
    """The DuckDB warm store. Reads go through per-thread cursors of the store's database, so
    API reads run in parallel with each other and never wait on the pipeline's commit lock."""

    name = "warm"

    def __init__(self, warehouse: DuckDBWarehouse, coverage_ttl_s: float = 2.0) -> None:
        self.warehouse = warehouse
        self.coverage_ttl_s = coverage_ttl_s
        self._local = threading.local()
        self._coverage: dict[Series, tuple[float, TimeRange | None]] = {}

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

    def coverage(self, series: Series) -> TimeRange | None:
        cached = self._coverage.get(series)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self.coverage_ttl_s:
            return cached[1]
        table, column, extra = {
            "candles": ("candles", "open_time", INTERVAL_US.get(series.interval, 0)),
            "trades": ("trades_recent", "ts_event", 1),
            "alerts": ("alerts", "ts", 1),
        }[series.kind]
        exchange = None if series.exchange == "*" else series.exchange
        where, params = _where(exchange, series.symbol, None, None, column)
        if series.kind == "candles":
            where.append("interval = ?")
            params.append(series.interval)
        sql = (
            f"SELECT epoch_us(min({column})), epoch_us(max({column})) FROM {table} "
            f"WHERE {' AND '.join(where)}"
        )
        low, high = self._rows(sql, params)[0]
        found = None if low is None else TimeRange(int(low), int(high) + extra)
        self._coverage[series] = (now, found)
        return found

    def candles(
        self, exchange: str, symbol: str, interval: str, start: int | None, end: int | None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> list[Candle]:  # fmt: skip
        where, params = _where(exchange, symbol, start, end, "open_time")
        where.append("interval = ?")
        params.append(interval)
        sql = f"{_CANDLE_SELECT} WHERE {' AND '.join(where)} ORDER BY open_time"
        return [Candle(*row) for row in self._rows(*_ordered(sql, params, limit, newest_first))]

    def trades(
        self, exchange: str, symbol: str, start: int | None, end: int | None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> list[Trade]:  # fmt: skip
        where, params = _where(exchange, symbol, start, end, "ts_event")
        sql = f"{_TRADE_SELECT} WHERE {' AND '.join(where)} ORDER BY ts_event, trade_id"
        return [Trade(*row) for row in self._rows(*_ordered(sql, params, limit, newest_first))]

    def alerts(
        self, exchange: str | None, symbol: str | None, start: int | None, end: int | None,
        *, kind: str | None = None, limit: int | None = None, newest_first: bool = False,
    ) -> list[Alert]:  # fmt: skip
        where, params = _where(exchange, symbol, start, end, "ts")
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        sql = f"{_ALERT_SELECT} WHERE {' AND '.join(where)} ORDER BY ts, alert_id"
        return [Alert(*row) for row in self._rows(*_ordered(sql, params, limit, newest_first))]

    def quotes(self) -> list[Quote]:
        """Latest best bid/ask per symbol (not part of the Tier protocol: quotes have no
        time range to route)."""
        rows = self._rows(
            "SELECT exchange, symbol, bid, bid_qty, ask, ask_qty, epoch_us(ts_event), "
            "epoch_us(ts_recv) FROM quotes ORDER BY exchange, symbol",
            [],
        )
        return [Quote(*row) for row in rows]


def _where(
    exchange: str | None, symbol: str | None, start: int | None, end: int | None, column: str
) -> tuple[list[str], list[Any]]:
    where, params = ["true"], []
    for clause, value in (
        ("exchange = ?", exchange),
        ("symbol = ?", symbol),
        (f"{column} >= make_timestamptz(?::BIGINT)", start),
        (f"{column} < make_timestamptz(?::BIGINT)", end),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    return where, params


def _ordered(
    sql: str, params: list[Any], limit: int | None, newest_first: bool
) -> tuple[str, list[Any]]:
    if newest_first:
        # Every ORDER BY here is ascending column lists; flip each of them.
        head, _, order = sql.rpartition(" ORDER BY ")
        sql = f"{head} ORDER BY " + ", ".join(f"{c} DESC" for c in order.split(", "))
    if limit is not None:
        sql += " LIMIT ?"
        params = [*params, int(limit)]
    return sql, params


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
        return _window(trades, lambda t: t.ts_event, None, None, limit, newest_first)

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
        return _window(candles, lambda c: c.open_time, start, end, limit, newest_first)

    def alerts(
        self, exchange: str | None, symbol: str | None, start: int | None, end: int | None,
        *, kind: str | None = None, limit: int | None = None, newest_first: bool = False,
    ) -> list[Alert]:  # fmt: skip
        return []


def embedded_router(store: EmbeddedStore) -> TierRouter:
    """Hot, warm and lake of one embedded data dir, hottest first."""
    return TierRouter(
        [HotMemoryTier(store.hot), WarmDuckDBTier(store.warm), LakeParquetTier(store.lake)]
    )
