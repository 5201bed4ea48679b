"""The daily lifecycle (storage/lifecycle.py) over embedded mode's data dir, for the CLI
(`marketpipe lifecycle run`) and the embedded scheduler.

It opens the data dir (or uses the store of a running pipeline, passed as `store`: DuckDB has
one writer) and first exports pending raw trades, so retention can drop them from DuckDB.
"""

from marketpipe.config import Settings
from marketpipe.embedded.stores import open_store
from marketpipe.storage.embedded import EmbeddedStore
from marketpipe.storage.lifecycle import LifecycleReport, run_cycle
from marketpipe.storage.lifecycle_duckdb import DuckDBLifecycle


def run_embedded_lifecycle(
    settings: Settings, now_us: int, *, store: EmbeddedStore | None = None
) -> LifecycleReport:
    """One lifecycle run at `now_us` (µs since the epoch) over the data dir."""
    own = store is None
    if store is None:
        store = open_store(settings)
    try:
        store.export_to_lake()
        # The in-memory hot tier trims itself on every commit; nothing to do for it here.
        return run_cycle(
            DuckDBLifecycle(store.warm), store.lake, None, now_us=now_us,
            settings=settings.lifecycle, final_after_us=settings.engine.final_after_us,
        )  # fmt: skip
    finally:
        if own:
            store.close()
