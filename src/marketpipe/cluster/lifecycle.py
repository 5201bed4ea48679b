"""The daily lifecycle (storage/lifecycle.py) over cluster mode's stores: PostgreSQL, the S3
bucket and Redis, from `[cluster]`."""

from marketpipe.cluster.stores import open_hot_tier, open_s3_lake, open_warehouse
from marketpipe.config import Settings
from marketpipe.storage.lifecycle import LifecycleReport, run_cycle


def run_cluster_lifecycle(settings: Settings, now_us: int) -> LifecycleReport:
    """One lifecycle run at `now_us` over the cluster's warm store, lake and hot tier."""
    warm = open_warehouse(settings, pool_size=1)
    try:
        hot = open_hot_tier(settings)
        try:
            warm.migrate()
            return run_cycle(
                warm, open_s3_lake(settings), hot, now_us=now_us,
                settings=settings.lifecycle, final_after_us=settings.engine.final_after_us,
            )  # fmt: skip
        finally:
            hot.close()
    finally:
        warm.close()
