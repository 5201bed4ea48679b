"""`marketpipe process --engine spark`: the Spark job with its foreachBatch sink.

Each micro-batch: Spark's changed 1m windows -> `MinuteBook` (finality, rollups, alerts, the
native rules) -> ONE PostgreSQL transaction fenced by `(query_name, batch_id)`
(`commit_fenced`: a batch Spark replays after a driver crash is applied at most once) ->
then Redis and the Kafka candles/alerts topics (at-least-once; readers upsert by key).

After a driver restart the book is rebuilt from PostgreSQL (positions and the candles that
may still change) and Spark resumes from its checkpoint (Kafka offsets, dedup and window
state), so the first batch it runs is either already fenced or exactly the next one.

With one candle query per exchange (`JobConfig.exchanges`: each exchange its own watermark),
every query has its own batch ids, so each is fenced under its own name
(`query_name:exchange`, from `for_exchange`); they share the one book, under one lock.
"""

import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from marketpipe.bus.kafka import RecordProducer, Topics
from marketpipe.cluster.native import EngineConfig, HotTier
from marketpipe.cluster.retry import best_effort, until_stored
from marketpipe.model.batch import CommitBatch
from marketpipe.model.errors import StorageError
from marketpipe.model.intervals import INTERVALS
from marketpipe.model.records import Alert, Candle, Position
from marketpipe.processing.spark_book import MinuteBook

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)


class SparkStore(Protocol):
    def commit(self, batch: CommitBatch) -> object: ...
    def commit_fenced(self, batch: CommitBatch, *, fence: tuple[str, int]) -> bool: ...
    def fence(self, query_name: str) -> int | None: ...
    def positions(self) -> list[Position]: ...
    def candles(
        self, *, exchange: str | None, symbol: str | None, interval: str,
        start: int | None, end: int | None, limit: int | None,
    ) -> list[Candle]: ...  # fmt: skip
    def alerts(
        self, *, exchange: str | None, symbol: str | None, start: int | None,
        end: int | None, limit: int | None,
    ) -> list[Alert]: ...  # fmt: skip


@dataclass(slots=True)
class SparkTotals:
    batches: int = 0
    skipped: int = 0  # replayed batch ids the fence refused
    windows_in: int = 0
    candles: int = 0
    alerts: int = 0
    hot_skipped: int = 0  # batches the hot tier missed (Redis down); warm has them


class SparkSink:
    """The foreachBatch function, plus the idle watermark advance; one lock for both."""

    def __init__(
        self,
        config: EngineConfig,
        store: SparkStore,
        bootstrap: str,
        topics: Topics,
        query_name: str,
        *,
        hot: HotTier | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.query_name = query_name
        self.hot = hot
        self.producer = RecordProducer(bootstrap, topics)
        self.totals = SparkTotals()
        self.book = MinuteBook(config.rules, config)
        self.last_batch_at = time.monotonic()
        self.last_commit_at_ns = 0
        self._lock = threading.Lock()
        self._restore()

    def _restore(self) -> None:
        positions = until_stored(self.store.positions)
        start = self.book.restore_from(positions)
        if start is None:
            return
        candles: list[Candle] = []
        for interval in INTERVALS:
            candles.extend(
                until_stored(
                    lambda i=interval: self.store.candles(  # type: ignore[misc]
                        exchange=None, symbol=None, interval=i, start=start, end=None, limit=None
                    )
                )
            )
        self.book.restore(positions, candles)
        # At-least-once publishing of whatever the last run committed but may not have sent.
        recent = [c for c in candles if c.interval == "1m" and not c.is_final]
        self._publish(CommitBatch(candles=recent))
        log.info("spark book restored", extra={"windows": self.book.open_windows})

    def __call__(self, frame: "DataFrame", batch_id: int) -> None:
        """The foreachBatch function of the one candle query of every exchange."""
        self._apply(self.query_name, frame, batch_id)

    def for_exchange(self, exchange: str) -> Callable[["DataFrame", int], None]:
        """The foreachBatch function of `exchange`'s own candle query, fenced on its name."""
        return functools.partial(self._apply, f"{self.query_name}:{exchange}")

    def _apply(self, fence_name: str, frame: "DataFrame", batch_id: int) -> None:
        with self._lock:
            applied = until_stored(lambda: self.store.fence(fence_name))
            if applied is not None and applied >= batch_id:
                self.totals.skipped += 1
                log.info("batch already applied", extra={"batch_id": batch_id, "query": fence_name})
                return
            rows = frame.toArrow().to_pylist()
            batch = self.book.apply(rows)
            done = until_stored(
                lambda: self.store.commit_fenced(batch, fence=(fence_name, batch_id))
            )
            self.last_batch_at = time.monotonic()
            if not done:
                self.totals.skipped += 1
                return
            self.last_commit_at_ns = time.perf_counter_ns()
            t = self.totals
            t.batches += 1
            t.windows_in += len(rows)
            t.candles += len(batch.candles)
            t.alerts += len(batch.alerts)
            self._publish(batch)

    def advance_idle(self) -> bool:
        """Let quiet exchanges' watermarks follow the wall clock; True if a window changed."""
        with self._lock:
            out = self.book.advance_idle(time.time_ns() // 1000)
            if out.is_empty:
                return False
            until_stored(lambda: self.store.commit(out))
            self.totals.candles += len(out.candles)
            self._publish(out)
            return True

    def _publish(self, batch: CommitBatch) -> None:
        hot = self.hot
        if hot is not None and not best_effort(lambda: hot.apply(batch), "hot tier"):
            self.totals.hot_skipped += 1
        self.producer.candles(batch.candles)
        self.producer.alerts(batch.alerts)
        self.producer.flush()


def spark_jars(cache: Path, pyspark_version: str, pyspark_jars: Path) -> list[Path]:
    """The Kafka connector jars fetched for this pyspark version, minus those pyspark ships."""
    directory = cache / f"jars-{pyspark_version}"
    if not (directory / ".complete").exists():
        raise StorageError(
            f"Spark Kafka jars for pyspark {pyspark_version} are missing in {directory}: "
            "run `bash scripts/setup.d/31-spark.sh`"
        )
    shipped = {_artifact(p.name) for p in pyspark_jars.glob("*.jar")}
    return sorted(p for p in directory.glob("*.jar") if _artifact(p.name) not in shipped)


def _artifact(name: str) -> str:
    """`kafka-clients-3.9.0.jar` -> `kafka-clients`."""
    parts = name.removesuffix(".jar").split("-")
    while parts and parts[-1][:1].isdigit():
        parts.pop()
    return "-".join(parts)


def caught_up(query: Any, end_offsets: dict[int, int]) -> bool:
    """Has the candle query read every trade the broker held (per partition)?"""
    progress = query.lastProgress
    if not progress or not progress.get("sources"):
        return not any(end_offsets.values())
    end = progress["sources"][0].get("endOffset")
    read: dict[str, int] = next(
        iter((json.loads(end) if isinstance(end, str) else end or {}).values()), {}
    )
    return all(int(read.get(str(p), 0)) >= o for p, o in end_offsets.items())


def _all_caught_up(queries: list[Any], end_offsets: dict[int, int]) -> bool:
    return all(caught_up(q, end_offsets) for q in queries)


def run_spark(
    sink: SparkSink,
    queries: list[Any],
    *,
    end_offsets: Callable[[], dict[int, int]] | None = None,
    max_seconds: float | None = None,
    until_idle: bool = False,
    stop: threading.Event | None = None,
) -> None:
    """Drive the running queries (the candle queries, then the dead-letter query last): idle
    watermark advance once every candle query is quiet and caught up, stop conditions,
    failures."""
    started = time.monotonic()
    candles = queries[:-1] or queries
    try:
        while stop is None or not stop.is_set():
            for query in queries:
                if not query.isActive:
                    error = query.exception()
                    raise StorageError(f"spark query {query.name} stopped: {error}")
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                break
            quiet = all(
                not q.status["isDataAvailable"] and not q.status["isTriggerActive"] for q in candles
            )
            if (
                quiet
                and time.monotonic() - sink.last_batch_at >= sink.config.idle_after_s
                and (end_offsets is None or _all_caught_up(candles, end_offsets()))
            ):
                changed = sink.advance_idle()
                if until_idle and not changed:
                    break
                sink.last_batch_at = time.monotonic()
            time.sleep(0.2)
    finally:
        for query in queries:
            if query.isActive:
                query.stop()
