"""`run_lifecycle(settings)`: the daily lifecycle over this mode's stores (storage/lifecycle.py),
for the CLI (`marketpipe lifecycle run`) and schedulers (the embedded scheduler, Airflow).

Embedded mode opens the data dir (or uses the store of a running pipeline, passed as `store`:
DuckDB has one writer) and first exports pending raw trades, so retention can drop them from
DuckDB. Cluster mode connects to PostgreSQL, the S3 bucket and Redis from `[cluster]`.
"""

import time
from typing import Literal

from marketpipe.config import Settings
from marketpipe.storage.embedded import EmbeddedStore
from marketpipe.storage.lifecycle import LifecycleReport, run_cycle
from marketpipe.storage.lifecycle_duckdb import DuckDBLifecycle
from marketpipe.storage.postgres_warm import PostgresWarehouse
from marketpipe.storage.redis_hot import RedisHotTier
from marketpipe.storage.s3 import s3_lake

Backend = Literal["embedded", "cluster"]


def run_lifecycle(
    settings: Settings,
    now: int | None = None,
    *,
    backend: Backend = "embedded",
    store: EmbeddedStore | None = None,
) -> LifecycleReport:
    """One lifecycle run at `now` (µs since the epoch; default: the wall clock)."""
    if now is not None and now < 10**14:  # before 1973 in µs: surely seconds or millis
        raise ValueError(f"now={now} must be microseconds since the epoch")
    now_us = int(time.time() * 1e6) if now is None else now
    final_after_us = int((settings.engine.grace_s + settings.engine.allowed_lateness_s) * 1e6)
    hot_retention_us = settings.storage.hot_retention_minutes * 60_000_000
    if backend == "cluster":
        cluster = settings.cluster
        warm = PostgresWarehouse(cluster.postgres_dsn, pool_size=1)
        hot = RedisHotTier(
            cluster.redis_url, prefix=cluster.redis_prefix, retention_us=hot_retention_us
        )
        try:
            warm.migrate()
            lake = s3_lake(cluster.s3_location())
            return run_cycle(
                warm, lake, hot, now_us=now_us, settings=settings.lifecycle,
                final_after_us=final_after_us,
            )  # fmt: skip
        finally:
            hot.close()
            warm.close()
    own = store is None
    if store is None:
        store = EmbeddedStore(
            settings.data_dir,
            lake_flush_trades=settings.storage.lake_flush_trades,
            hot_retention_us=hot_retention_us,
            warm_threads=settings.storage.warm_threads,
        )
    try:
        store.export_to_lake()
        # The in-memory hot tier trims itself on every commit; nothing to do for it here.
        return run_cycle(
            DuckDBLifecycle(store.warm), store.lake, None, now_us=now_us,
            settings=settings.lifecycle, final_after_us=final_after_us,
        )  # fmt: skip
    finally:
        if own:
            store.close()
