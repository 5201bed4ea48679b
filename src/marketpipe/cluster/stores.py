"""Cluster mode's stores as the settings describe them: the one place each is built.

PostgreSQL (warm), Redis (hot) and the S3 lake, from `[cluster]`; hot retention from
`[storage]`."""

from marketpipe.config import Settings
from marketpipe.storage.lake import ParquetLake
from marketpipe.storage.postgres_warm import PostgresWarehouse
from marketpipe.storage.redis_hot import RedisHotTier
from marketpipe.storage.s3 import s3_lake


def open_warehouse(
    settings: Settings, *, dsn: str | None = None, pool_size: int | None = None
) -> PostgresWarehouse:
    """The PostgreSQL warm store at `dsn` (default: cluster.postgres_dsn)."""
    cluster = settings.cluster
    return PostgresWarehouse(
        dsn or cluster.postgres_dsn, pool_size=pool_size or cluster.postgres_pool_size
    )


def open_hot_tier(settings: Settings) -> RedisHotTier:
    cluster = settings.cluster
    return RedisHotTier(
        cluster.redis_url,
        prefix=cluster.redis_prefix,
        retention_us=settings.storage.hot_retention_us,
        candles_per_series=cluster.hot_candles_per_series,
        max_alerts=cluster.hot_max_alerts,
    )


def open_s3_lake(settings: Settings) -> ParquetLake:
    return s3_lake(settings.cluster.s3_location())
