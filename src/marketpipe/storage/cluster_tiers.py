"""Cluster mode's tiers behind the router's `Tier` protocol: Redis, PostgreSQL and S3.

Read adapters only. The hot tier answers candles of the last hour (its coverage starts at the
oldest candle it holds, which lifecycle and outages only ever move forward); the warm tier
answers everything PostgreSQL keeps (90 days); the lake is the same Parquet tier as embedded
mode's, over the S3 bucket (candles computed exactly from raw trades, by the monoid).
"""

from collections.abc import Sequence
from typing import Any

from marketpipe.model.records import Alert, Candle, Trade
from marketpipe.storage.embedded_tiers import LakeParquetTier
from marketpipe.storage.lake import ParquetLake
from marketpipe.storage.postgres_warm import PostgresWarehouse
from marketpipe.storage.redis_hot import RedisHotTier
from marketpipe.storage.router import TierRouter
from marketpipe.storage.sql_dialect import POSTGRES
from marketpipe.storage.sql_tier import SqlWarmTier
from marketpipe.storage.tiers import Series, TimeRange, matching_alerts, window


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
        return window(series, lambda c: c.open_time, None, None, limit, newest_first)

    def trades(
        self, exchange: str, symbol: str, start: int | None, end: int | None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> list[Trade]:  # fmt: skip
        return []

    def alerts(
        self, exchange: str | None, symbol: str | None, start: int | None, end: int | None,
        *, kind: str | None = None, limit: int | None = None, newest_first: bool = False,
    ) -> list[Alert]:  # fmt: skip
        found = matching_alerts(self.hot.alerts(), exchange, symbol, kind)
        return window(found, lambda a: a.ts, start, end, limit, newest_first)


class WarmPostgresTier(SqlWarmTier):
    """The PostgreSQL warm store, on the warehouse's connection pool."""

    def __init__(self, warehouse: PostgresWarehouse, coverage_ttl_s: float = 2.0) -> None:
        super().__init__(POSTGRES, coverage_ttl_s)
        self.warehouse = warehouse

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self.warehouse.rows(sql, params)


def cluster_router(hot: RedisHotTier, warm: PostgresWarehouse, lake: ParquetLake) -> TierRouter:
    """Redis, PostgreSQL and the S3 lake, hottest first."""
    return TierRouter([HotRedisTier(hot), WarmPostgresTier(warm), LakeParquetTier(lake)])
