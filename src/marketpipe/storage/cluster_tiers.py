"""Cluster mode's tiers behind the router's `Tier` protocol: Redis, PostgreSQL and S3.

Read adapters only. The hot tier answers candles of the last hour (its coverage starts at the
oldest candle it holds, which lifecycle and outages only ever move forward); the warm tier
answers everything PostgreSQL keeps (90 days); the lake is the same Parquet tier as embedded
mode's, over the S3 bucket (candles computed exactly from raw trades, by the monoid).
"""

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from marketpipe.model.intervals import INTERVAL_US
from marketpipe.model.records import Alert, Candle, Trade
from marketpipe.model.schemas import ALERT_SCHEMA, CANDLE_SCHEMA, TRADE_SCHEMA
from marketpipe.storage.embedded_tiers import LakeParquetTier
from marketpipe.storage.lake import ParquetLake
from marketpipe.storage.postgres_copy import select_list
from marketpipe.storage.postgres_warm import PostgresWarehouse
from marketpipe.storage.redis_hot import RedisHotTier
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


class HotRedisTier:
    """Candles of the last hour from Redis. Alerts there are a bounded feed and quotes are not
    ranged, so it claims no coverage for them (the warm tier answers)."""

    name = "hot"

    def __init__(self, hot: RedisHotTier) -> None:
        self.hot = hot

    def coverage(self, series: Series) -> TimeRange | None:
        if series.kind != "candles" or series.symbol is None:
            return None
        span = self.hot.series_span(series.exchange, series.symbol, series.interval)
        return None if span is None else TimeRange(*span)

    def candles(
        self, exchange: str, symbol: str, interval: str, start: int | None, end: int | None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> list[Candle]:  # fmt: skip
        series = self.hot.candles(exchange, symbol, interval, start, end)
        return _window(series, lambda c: c.open_time, None, None, limit, newest_first)

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


class WarmPostgresTier:
    """The PostgreSQL warm store. Coverage is cached briefly: every API request asks for it."""

    name = "warm"

    def __init__(self, warehouse: PostgresWarehouse, coverage_ttl_s: float = 2.0) -> None:
        self.warehouse = warehouse
        self.coverage_ttl_s = coverage_ttl_s
        self._coverage: dict[Series, tuple[float, TimeRange | None]] = {}

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
            where.append("interval = %s")
            params.append(series.interval)
        low, high = self.warehouse.rows(
            f"SELECT mp_us(min({column})), mp_us(max({column})) FROM {table} "
            f"WHERE {' AND '.join(where)}",
            params,
        )[0]
        found = None if low is None else TimeRange(int(low), int(high) + extra)
        self._coverage[series] = (now, found)
        return found

    def candles(
        self, exchange: str, symbol: str, interval: str, start: int | None, end: int | None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> list[Candle]:  # fmt: skip
        where, params = _where(exchange, symbol, start, end, "open_time")
        where.append("interval = %s")
        params.append(interval)
        sql = f"SELECT {select_list(CANDLE_SCHEMA)} FROM candles WHERE {' AND '.join(where)}"
        rows = self.warehouse.rows(*_ordered(sql, ["open_time"], params, limit, newest_first))
        return [Candle(*row) for row in rows]

    def trades(
        self, exchange: str, symbol: str, start: int | None, end: int | None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> list[Trade]:  # fmt: skip
        where, params = _where(exchange, symbol, start, end, "ts_event")
        sql = f"SELECT {select_list(TRADE_SCHEMA)} FROM trades_recent WHERE {' AND '.join(where)}"
        order = ["ts_event", "trade_id"]
        rows = self.warehouse.rows(*_ordered(sql, order, params, limit, newest_first))
        return [Trade(*row) for row in rows]

    def alerts(
        self, exchange: str | None, symbol: str | None, start: int | None, end: int | None,
        *, kind: str | None = None, limit: int | None = None, newest_first: bool = False,
    ) -> list[Alert]:  # fmt: skip
        where, params = _where(exchange, symbol, start, end, "ts")
        if kind is not None:
            where.append("kind = %s")
            params.append(kind)
        sql = f"SELECT {select_list(ALERT_SCHEMA)} FROM alerts WHERE {' AND '.join(where)}"
        rows = self.warehouse.rows(*_ordered(sql, ["ts", "alert_id"], params, limit, newest_first))
        return [Alert(*row) for row in rows]


def _where(
    exchange: str | None, symbol: str | None, start: int | None, end: int | None, column: str
) -> tuple[list[str], list[Any]]:
    where: list[str] = ["true"]
    params: list[Any] = []
    for clause, value in (
        ("exchange = %s", exchange),
        ("symbol = %s", symbol),
        (f"{column} >= mp_ts(%s)", start),
        (f"{column} < mp_ts(%s)", end),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    return where, params


def _ordered(
    sql: str, order: list[str], params: list[Any], limit: int | None, newest_first: bool
) -> tuple[str, list[Any]]:
    direction = " DESC" if newest_first else ""
    sql += " ORDER BY " + ", ".join(f"{c}{direction}" for c in order)
    if limit is not None:
        sql += " LIMIT %s"
        params = [*params, int(limit)]
    return sql, params


def cluster_router(hot: RedisHotTier, warm: PostgresWarehouse, lake: ParquetLake) -> TierRouter:
    """Redis, PostgreSQL and the S3 lake, hottest first."""
    return TierRouter([HotRedisTier(hot), WarmPostgresTier(warm), LakeParquetTier(lake)])
