"""Applies committed log entries to the warm store in the background, many per transaction.

Batches arrive in commit order; whatever has queued up while DuckDB was busy goes in as one
merged transaction (one set of statements however many batches it holds), so the warm store
keeps up with any batch rate and lags by about one transaction.
"""

import logging
import threading
from collections.abc import Callable

from marketpipe.model.batch import CommitBatch, merge_batches
from marketpipe.model.errors import StorageError
from marketpipe.storage.commit_log import CommitLog
from marketpipe.storage.duckdb_warm import DuckDBWarehouse

log = logging.getLogger(__name__)

# Empty the log once the warm store has caught up and the file has grown past this.
LOG_RESET_BYTES = 16 * 1024 * 1024
# At most this many trades per warm transaction (bounds memory and transaction time).
MAX_TRADES_PER_TRANSACTION = 200_000


class WarmMaterializer:
    def __init__(
        self,
        warm: DuckDBWarehouse,
        commit_log: CommitLog,
        log_lock: threading.Lock,
        on_applied: Callable[[CommitBatch], None],
    ) -> None:
        self.warm = warm
        self.commit_log = commit_log
        self.log_lock = log_lock  # held by the store across append + submit
        self.on_applied = on_applied
        self._pending: list[tuple[int, CommitBatch]] = []
        self._submitted = warm.last_seq
        self._applied = warm.last_seq
        self._cond = threading.Condition()
        self._closing = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="warm-materializer", daemon=True)
        self._thread.start()

    def submit(self, seq: int, batch: CommitBatch) -> None:
        with self._cond:
            self._pending.append((seq, batch))
            self._submitted = seq
            self._cond.notify_all()

    def sync(self, timeout: float | None = None) -> None:
        """Wait until the warm store holds every batch submitted so far."""
        with self._cond:
            target = self._submitted
            done = self._cond.wait_for(
                lambda: self._applied >= target or self.error is not None, timeout
            )
        if self.error is not None:
            raise StorageError(f"warm store materialization failed: {self.error}")
        if not done:
            raise StorageError(f"warm store did not catch up within {timeout} s")

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()

    def _take(self) -> list[tuple[int, CommitBatch]] | None:
        with self._cond:
            self._cond.wait_for(lambda: bool(self._pending) or self._closing)
            if not self._pending:
                return None  # closing, and nothing left to apply
            taken, trades = 0, 0
            for _, batch in self._pending:
                taken += 1
                trades += batch.trades.num_rows
                if trades >= MAX_TRADES_PER_TRANSACTION:
                    break
            entries, self._pending = self._pending[:taken], self._pending[taken:]
            return entries

    def _run(self) -> None:
        while (entries := self._take()) is not None:
            seq = entries[-1][0]
            try:
                merged = merge_batches([batch for _, batch in entries])
                self.warm.commit(merged, seq=seq)
                self.on_applied(merged)
            except Exception as exc:  # the log still holds the entries: restart applies them
                log.exception("warm store materialization failed")
                with self._cond:
                    self.error = exc
                    self._cond.notify_all()
                return
            with self._cond:
                self._applied = seq
                self._cond.notify_all()
            self._maybe_reset_log()

    def _maybe_reset_log(self) -> None:
        with self.log_lock:
            if self._submitted == self._applied and self.commit_log.size() > LOG_RESET_BYTES:
                self.commit_log.reset()
