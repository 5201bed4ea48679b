"""Cluster mode's stores as the settings describe them: the one place each is built.

The warm store is PostgreSQL or BigQuery (`cluster.warehouse`), the lake S3 or GCS
(`cluster.lake`), the hot tier Redis; servers from `[cluster]` and `[gcp]`, hot retention from
`[storage]`. Google's client libraries load only when the Google Cloud path is chosen."""

from collections.abc import Callable
from typing import TYPE_CHECKING

from marketpipe.config import Settings
from marketpipe.storage.lake import ParquetLake
from marketpipe.storage.postgres_warm import PostgresWarehouse
from marketpipe.storage.redis_hot import RedisHotTier
from marketpipe.storage.s3 import s3_lake

if TYPE_CHECKING:
    from marketpipe.storage.bigquery_warm import BigQueryWarehouse


def open_warehouse(
    settings: Settings, *, dsn: str | None = None, pool_size: int | None = None
) -> PostgresWarehouse:
    """The PostgreSQL warm store at `dsn` (default: cluster.postgres_dsn)."""
    cluster = settings.cluster
    return PostgresWarehouse(
        dsn or cluster.postgres_dsn, pool_size=pool_size or cluster.postgres_pool_size
    )


def open_bigquery(
    settings: Settings, *, route: Callable[[str, str], int] | None = None,
    writes_trades: bool = True,
) -> "BigQueryWarehouse":  # fmt: skip
    """The BigQuery warm store of `[gcp]`. `route` (symbol -> Kafka partition) lets it fence
    a consumer's commits; `writes_trades=False` leaves raw trades to the archive role."""
    from marketpipe.storage.bigquery_client import BigQueryLocation
    from marketpipe.storage.bigquery_warm import BigQueryWarehouse

    gcp = settings.gcp
    location = BigQueryLocation(
        project=gcp.project, dataset=gcp.bigquery_dataset, location=gcp.bigquery_location,
        endpoint=gcp.bigquery_endpoint, credentials_file=gcp.credentials_file,
        timeout_s=gcp.bigquery_timeout_s,
    )  # fmt: skip
    return BigQueryWarehouse(location, route=route, writes_trades=writes_trades)


def open_warm_store(
    settings: Settings, *, dsn: str | None = None,
    route: Callable[[str, str], int] | None = None, writes_trades: bool = True,
) -> "PostgresWarehouse | BigQueryWarehouse":  # fmt: skip
    """The warm store `cluster.warehouse` names."""
    if settings.cluster.warehouse == "bigquery":
        return open_bigquery(settings, route=route, writes_trades=writes_trades)
    return open_warehouse(settings, dsn=dsn)


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


def open_gcs_lake(settings: Settings) -> ParquetLake:
    from marketpipe.storage.gcs import GcsLocation, gcs_lake

    gcp = settings.gcp
    return gcs_lake(GcsLocation(gcp.gcs_bucket, gcp.gcs_prefix, gcp.gcs_endpoint,
                                gcp.credentials_file, gcp.project))  # fmt: skip


def open_cluster_lake(settings: Settings) -> ParquetLake:
    """The lake `cluster.lake` names."""
    return open_gcs_lake(settings) if settings.cluster.lake == "gcs" else open_s3_lake(settings)


def kafka_route(bootstrap: str, topic: str) -> Callable[[str, str], int]:
    """symbol -> the partition of `topic` its records are keyed to (the producer's own
    partitioner over the topic's partition count)."""
    from confluent_kafka.admin import AdminClient

    from marketpipe.bus.kafka import BusError, partition_of
    from marketpipe.bus.serde import symbol_key

    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=30)
    count = len(metadata.topics[topic].partitions)
    if not count:
        raise BusError(f"topic {topic} does not exist yet at {bootstrap}: start ingest first")
    return lambda exchange, symbol: partition_of(symbol_key(exchange, symbol), count)
