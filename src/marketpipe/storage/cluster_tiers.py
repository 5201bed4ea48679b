"""Cluster mode's tiers behind the router's `Tier` protocol: Redis, PostgreSQL and S3.

Redis is a `Tier` itself: candles of the last hour (its coverage starts at the oldest candle
it holds, which lifecycle and outages only ever move forward). The warm tier answers
everything PostgreSQL keeps (90 days); the lake is the same Parquet tier as embedded mode's,
over the S3 bucket (candles computed exactly from raw trades, by the monoid).
"""

from collections.abc import Sequence
from typing import Any

from marketpipe.storage.embedded_tiers import LakeParquetTier
from marketpipe.storage.lake import ParquetLake
from marketpipe.storage.postgres_warm import PostgresWarehouse
from marketpipe.storage.redis_hot import RedisHotTier
from marketpipe.storage.router import TierRouter
from marketpipe.storage.sql_dialect import POSTGRES
from marketpipe.storage.sql_tier import SqlWarmTier


class WarmPostgresTier(SqlWarmTier):
    """The PostgreSQL warm store, on the warehouse's connection pool."""

    def __init__(self, warehouse: PostgresWarehouse, coverage_ttl_s: float = 2.0) -> None:
        super().__init__(POSTGRES, coverage_ttl_s)
        self.warehouse = warehouse

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self.warehouse.rows(sql, params)


def cluster_router(hot: RedisHotTier, warm: PostgresWarehouse, lake: ParquetLake) -> TierRouter:
    """Redis, PostgreSQL and the S3 lake, hottest first."""
    return TierRouter([hot, WarmPostgresTier(warm), LakeParquetTier(lake)])
