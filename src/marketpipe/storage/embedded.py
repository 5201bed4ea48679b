"""Embedded mode's storage: DuckDB warm store, Parquet lake and in-memory hot tier.

A micro-batch commits to the warm store in one transaction, then updates the hot tier.
Raw trades move warm -> lake in exports planned before they are written, so a crash at any
point redoes the same files and the lake never holds a trade twice. Exports run on a
background thread, so a commit never waits for Parquet (it was a latency spike, and in
replay it kept the second core idle).
"""

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from marketpipe.model.batch import CommitBatch
from marketpipe.model.errors import StorageError
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
        warm_threads: int | None = None,
    ) -> None:
        self.dirs = DataDir(data_dir)
        self.warm = DuckDBWarehouse(self.dirs.warm, read_only=read_only, threads=warm_threads)
        self.lake = ParquetLake(self.dirs.lake)
        self.hot = MemoryHotTier(hot_retention_us)
        self.lake_flush_trades = lake_flush_trades
        self._unexported = 0 if read_only else self.warm.pending_trades()
        self.exported_trades = 0  # by this process, for summaries
        self._export_lock = threading.Lock()  # one export at a time: background or final
        self._export_due = threading.Event()
        self._closing = False
        self._export_error: BaseException | None = None
        self._exporter: threading.Thread | None = None

    def commit(self, batch: CommitBatch) -> int:
        if self._export_error is not None:
            raise StorageError(f"lake export failed: {self._export_error}")
        seq = self.warm.commit(batch)
        self.hot.apply(batch)
        self._unexported += batch.trades.num_rows
        if self._unexported >= self.lake_flush_trades:
            self._unexported = 0
            self._start_exporter()
            self._export_due.set()
        return seq

    def export_to_lake(self) -> int:
        """Move every committed raw trade not yet in the lake there; returns trades moved."""
        moved = 0
        with self._export_lock:
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
            self.exported_trades += moved
        return moved

    def _start_exporter(self) -> None:
        if self._exporter is None:
            self._exporter = threading.Thread(
                target=self._export_in_background, name="lake-export", daemon=True
            )
            self._exporter.start()

    def _export_in_background(self) -> None:
        while True:
            self._export_due.wait()
            self._export_due.clear()
            if self._closing:
                return
            try:
                self.export_to_lake()
            except Exception as exc:  # surfaces on the next commit, which then fails
                log.exception("background lake export failed")
                self._export_error = exc
                return

    def close(self) -> None:
        self._closing = True
        if self._exporter is not None:
            self._export_due.set()
            self._exporter.join()
        self.warm.close()
