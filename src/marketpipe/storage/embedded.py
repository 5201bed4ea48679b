"""Embedded mode's storage: DuckDB warm store, Parquet lake and in-memory hot tier.

A micro-batch commits to the warm store in one transaction, then updates the hot tier.
Raw trades move warm -> lake in exports planned before they are written, so a crash at any
point redoes the same files and the lake never holds a trade twice.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from marketpipe.model.batch import CommitBatch
from marketpipe.storage.duckdb_warm import DuckDBWarehouse
from marketpipe.storage.hot_memory import MemoryHotTier
from marketpipe.storage.lake import ParquetLake

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DataDir:
    """Where embedded mode keeps everything under one directory."""

    root: Path

    @property
    def warm(self) -> Path:
        return self.root / "warm.duckdb"

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def lock(self) -> Path:
        return self.root / "marketpipe.lock.json"


class EmbeddedStore:
    def __init__(
        self,
        data_dir: Path,
        *,
        lake_flush_trades: int = 500_000,
        hot_retention_us: int = 3_600_000_000,
        read_only: bool = False,
    ) -> None:
        self.dirs = DataDir(data_dir)
        self.warm = DuckDBWarehouse(self.dirs.warm, read_only=read_only)
        self.lake = ParquetLake(self.dirs.lake)
        self.hot = MemoryHotTier(hot_retention_us)
        self.lake_flush_trades = lake_flush_trades
        self._unexported = 0 if read_only else self.warm.pending_trades()
        self.exported_trades = 0  # by this process, for summaries

    def commit(self, batch: CommitBatch) -> int:
        seq = self.warm.commit(batch)
        self.hot.apply(batch)
        self._unexported += batch.trades.num_rows
        if self._unexported >= self.lake_flush_trades:
            self.export_to_lake()
        return seq

    def export_to_lake(self) -> int:
        """Move every committed raw trade not yet in the lake there; returns trades moved."""
        moved = 0
        while (pending := self.warm.pending_export()) is not None:
            first, last = pending
            rows = self.warm.export_rows(first, last)
            files = self.lake.write_trades(rows)
            self.warm.mark_exported(first, files, rows.num_rows)
            log.info(
                "lake export",
                extra={"batches": f"{first}-{last}", "trades": rows.num_rows, "files": files},
            )
            moved += rows.num_rows
        self._unexported = 0
        self.exported_trades += moved
        return moved

    def close(self) -> None:
        self.warm.close()
