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

from marketpipe.model.batch import CommitBatch, merge_batches
from marketpipe.model.errors import StorageError
from marketpipe.model.records import Candle, Position
from marketpipe.storage.commit_log import CommitLog, Durability
from marketpipe.storage.duckdb_warm import DuckDBWarehouse
from marketpipe.storage.hot_memory import MemoryHotTier
from marketpipe.storage.lake import ParquetLake
from marketpipe.storage.materializer import WarmMaterializer

log = logging.getLogger(__name__)


MARTS_FILE = "analytics.duckdb"


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
    def commit_log(self) -> Path:
        return self.root / "commit.log"

    @property
    def lock(self) -> Path:
        return self.root / "marketpipe.lock.json"

    @property
    def marts(self) -> Path:
        """dbt's marts, published whole by renaming a finished build over it."""
        return self.root / MARTS_FILE


class EmbeddedStore:
    """Commits micro-batches to the warm store directly (replay: big batches), or, with
    `commit_log`, to the commit log, materializing the warm store in the background (live:
    a commit then takes about a millisecond instead of a DuckDB transaction). `durability`
    says when a log append reaches the disk (`commit_log.Durability`); `fsync` is its old,
    deprecated boolean form."""

    def __init__(
        self,
        data_dir: Path,
        *,
        lake_flush_trades: int = 500_000,
        hot_retention_us: int = 3_600_000_000,
        read_only: bool = False,
        warm_threads: int | None = None,
        warm_memory_mb: int | None = None,
        commit_log: bool = False,
        durability: Durability = "group",
        fsync_interval_ms: int = 100,
        fsync: bool | None = None,
    ) -> None:
        if fsync is not None:  # deprecated: fsync=True is "group", False is "never"
            durability = "group" if fsync else "never"
        self.dirs = DataDir(data_dir)
        self.warm = DuckDBWarehouse(
            self.dirs.warm, read_only=read_only, threads=warm_threads,
            memory_limit_mb=warm_memory_mb,
        )  # fmt: skip
        self.lake = ParquetLake(self.dirs.lake)
        self.hot = MemoryHotTier(hot_retention_us)
        self.lake_flush_trades = lake_flush_trades
        self.exported_trades = 0  # by this process, for summaries
        self._export_lock = threading.Lock()  # one export at a time: background or final
        self._export_due = threading.Event()
        self._closing = False
        self._export_error: BaseException | None = None
        self._exporter: threading.Thread | None = None
        self._log = CommitLog(
            self.dirs.commit_log, durability=durability, fsync_interval_ms=fsync_interval_ms
        )
        self._log_lock = threading.Lock()
        self._materializer: WarmMaterializer | None = None
        if not read_only:
            self._recover_log()
            if commit_log:
                self._materializer = WarmMaterializer(
                    self.warm, self._log, self._log_lock, self._applied
                )
        self._seq = self.warm.last_seq
        # Bumped once a commit is fully applied; readers cache responses per version.
        self.version = 0
        self._unexported = 0 if read_only else self.warm.pending_trades()

    def _recover_log(self) -> None:
        """Apply what the commit log holds and the warm store does not (a crash in between)."""
        pending = [(seq, b) for seq, b in self._log.entries() if seq > self.warm.last_seq]
        if pending:
            self.warm.commit(merge_batches([b for _, b in pending]), seq=pending[-1][0])
            log.info("recovered from the commit log", extra={"batches": len(pending)})
        self._log.reset()

    def commit(self, batch: CommitBatch) -> int:
        if self._closing:
            raise StorageError("commit after the store was closed")
        if self._export_error is not None:
            raise StorageError(f"lake export failed: {self._export_error}")
        if self._materializer is None:
            seq = self._seq = self.warm.commit(batch)
            self._applied(batch)
        else:
            if self._materializer.error is not None:
                raise StorageError(f"warm store materialization failed: {self._materializer.error}")
            with self._log_lock:
                seq = self._seq + 1
                self._log.append(seq, batch)
                self._seq = seq
                self._materializer.submit(seq, batch)
        self.hot.apply(batch)
        self.version += 1  # last: a reader that sees the new version sees the whole batch
        return seq

    def positions(self) -> list[Position]:
        """Stored positions (a `StateSource`): the warm store's, current once it opened."""
        return self.warm.positions()

    def open_windows(self, min_close_time: int) -> list[tuple[Candle, int, int]]:
        return self.warm.open_windows(min_close_time)

    def sync(self) -> None:
        """Wait until the warm store holds every committed batch (a no-op without the log)."""
        if self._materializer is not None:
            self._materializer.sync()

    def _applied(self, batch: CommitBatch) -> None:
        """A batch reached the warm store: export to the lake once enough trades wait."""
        self._unexported += batch.trades.num_rows
        if self._unexported >= self.lake_flush_trades:
            self._unexported = 0
            self._start_exporter()
            self._export_due.set()

    def export_to_lake(self) -> int:
        """Move every committed raw trade not yet in the lake there; returns trades moved."""
        self.sync()
        moved = 0
        with self._export_lock:
            while (pending := self.warm.pending_export()) is not None:
                first, last = pending
                files = trades = 0
                for rows in self.warm.export_rows(first, last):
                    files += self.lake.write_trades(rows)
                    trades += rows.num_rows
                self.warm.mark_exported(first, files, trades)
                log.info(
                    "lake export",
                    extra={"batches": f"{first}-{last}", "trades": trades, "files": files},
                )
                moved += trades
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
        if self._materializer is not None:
            self._materializer.close()  # applies what is queued first
            if self._materializer.error is None:
                with self._log_lock:
                    self._log.reset()
        self._log.close()
        if self._exporter is not None:
            self._export_due.set()
            self._exporter.join()
        self.warm.close()
