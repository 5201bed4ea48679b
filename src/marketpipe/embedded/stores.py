"""The embedded store as the settings describe it: the one place it is built."""

from pathlib import Path

from marketpipe.config import Settings
from marketpipe.storage.embedded import EmbeddedStore


def open_store(settings: Settings, *, live: bool = False) -> EmbeddedStore:
    """The embedded store as the settings describe it (the data dir's single writer).
    Live runs commit through the commit log (small batches, millisecond commits); replay
    commits big batches to the warm store directly."""
    return EmbeddedStore(
        settings.data_dir,
        lake_flush_trades=settings.storage.lake_flush_trades,
        hot_retention_us=settings.storage.hot_retention_us,
        warm_threads=settings.storage.warm_threads,
        warm_memory_mb=settings.storage.warm_memory_mb,
        commit_log=live and settings.storage.commit_log,
        durability=settings.storage.durability,
        fsync_interval_ms=settings.storage.fsync_interval_ms,
    )


def open_reader(data_dir: Path) -> EmbeddedStore:
    """A read-only view of a data dir no pipeline holds (query, status, serve, dbt)."""
    return EmbeddedStore(data_dir, read_only=True)
