"""Cluster mode's tiers behind the router's `Tier` protocol: Redis, the warm store
(PostgreSQL or BigQuery) and the lake (S3 or GCS).

Redis is a `Tier` itself: candles of the last hour (its coverage starts at the oldest candle
it holds, which lifecycle and outages only ever move forward). The warm tier answers
everything the warm store keeps (90 days); the lake is the same Parquet tier as embedded
mode's, over the bucket (candles computed exactly from raw trades, by the monoid).
"""

from collections.abc import Sequence
from typing import Any, Protocol

from marketpipe.storage.embedded_tiers import LakeParquetTier
from marketpipe.storage.lake import ParquetLake
from marketpipe.storage.redis_hot import RedisHotTier
from marketpipe.storage.router import TierRouter
from marketpipe.storage.sql_dialect import SqlDialect
from marketpipe.storage.sql_tier import SqlWarmTier


class SqlWarehouse(Protocol):
    """A warm store that runs read queries in its dialect (PostgreSQL, BigQuery)."""

    dialect: SqlDialect

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


class WarmWarehouseTier(SqlWarmTier):
    """A cluster warm store, on the warehouse's own connections."""

    def __init__(self, warehouse: SqlWarehouse, coverage_ttl_s: float = 2.0) -> None:
        super().__init__(warehouse.dialect, coverage_ttl_s)
        self.warehouse = warehouse

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self.warehouse.rows(sql, params)


def cluster_router(hot: RedisHotTier, warm: SqlWarehouse, lake: ParquetLake) -> TierRouter:
    """Redis, the warm store and the lake, hottest first."""
    return TierRouter([hot, WarmWarehouseTier(warm), LakeParquetTier(lake)])
