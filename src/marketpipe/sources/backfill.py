"""Runs back-fill jobs over a venue's REST history, one at a time, and forwards what it finds.

One worker per connector: REST limits are per IP, so running jobs in parallel would only make
them queue on the venue's budget. A job pages by up to `backfill_page_size` ids and ends at its
bound, at the present (a short or empty page), or after repeated REST failures (logged and
counted; the ids stay missing and show up in the symbol's status).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from marketpipe.model.errors import SourceError
from marketpipe.model.records import DeadLetter, Quote, Trade
from marketpipe.observability.metrics import (
    BACKFILLED_TRADES,
    GAPS_FILLED,
    GAPS_FOUND,
    PRODUCER_ERRORS,
    PRODUCER_MESSAGES,
)
from marketpipe.sources.ratelimit import backoff_delay
from marketpipe.sources.tracker import BackfillJob, TradeIdTracker
from marketpipe.sources.venue import TradeHistory

log = logging.getLogger(__name__)

Emit = Callable[[list[Trade | Quote | DeadLetter]], Awaitable[None]]


class Backfiller:
    def __init__(
        self,
        history: TradeHistory,
        tracker: TradeIdTracker,
        emit: Emit,
        *,
        exchange: str,
        page_size: int = 1000,
        max_failures: int = 5,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ) -> None:
        self._history = history
        self._tracker = tracker
        self._exchange = exchange
        self._emit = emit
        self._page_size = page_size
        self._max_failures = max_failures
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._jobs: asyncio.Queue[BackfillJob] = asyncio.Queue()
        self.jobs_done = 0
        self.running: BackfillJob | None = None

    def submit(self, jobs: Sequence[BackfillJob]) -> None:
        for job in jobs:
            if job.reason == "gap":
                GAPS_FOUND.labels(self._exchange, job.symbol).inc()
                log.warning(
                    "gap in %s trade ids %d..%d; back-filling", job.symbol, job.from_id, job.to_id
                )
            self._jobs.put_nowait(job)

    @property
    def pending(self) -> int:
        return self._jobs.qsize() + (1 if self.running is not None else 0)

    async def run(self) -> None:
        """Work through jobs until cancelled; a failing job never stops the worker."""
        while True:
            job = await self._jobs.get()
            self.running = job
            try:
                await self._run_job(job)
            except Exception:
                PRODUCER_ERRORS.labels(self._exchange, "backfill").inc()
                log.exception("back-fill of %s from %d crashed", job.symbol, job.from_id)
            finally:
                self.running = None
                self.jobs_done += 1

    async def _run_job(self, job: BackfillJob) -> None:
        next_id = job.from_id
        fetched = 0
        complete = True  # every id from from_id on arrived, in order
        failures = 0
        while True:
            if job.to_id is not None and next_id > job.to_id:
                break
            limit = self._page_size
            if job.to_id is not None:
                limit = min(limit, job.to_id - next_id + 1)
            try:
                page = await self._history.trades_from(job.symbol, next_id, limit)
            except SourceError as exc:
                failures += 1
                PRODUCER_ERRORS.labels(self._exchange, "backfill").inc()
                if failures >= self._max_failures:
                    log.error("giving up back-fill of %s at id %d: %s", job.symbol, next_id, exc)
                    complete = False
                    break
                log.warning("back-fill of %s failed (%s); retrying", job.symbol, exc)
                await asyncio.sleep(backoff_delay(failures - 1, *self._backoff))
                continue
            failures = 0
            # Read the bound after the await: a live trade may have set it meanwhile.
            kept = self._tracker.accept_backfill(job, page)
            for trade in kept:
                if trade.trade_id != next_id:
                    complete = False
                next_id = trade.trade_id + 1
            if kept:
                fetched += len(kept)
                BACKFILLED_TRADES.labels(self._exchange).inc(len(kept))
                PRODUCER_MESSAGES.labels(self._exchange, "trade").inc(len(kept))
                await self._emit(list(kept))
            if not page or len(page) < limit or len(kept) < len(page):
                # Short page: we reached the present. Fewer kept than fetched: past the bound.
                break
            next_id = max(next_id, page[-1].trade_id + 1)
        if job.to_id is not None and next_id <= job.to_id:
            complete = False
        found, filled = self._tracker.finish(job, fetched, complete)
        if job.reason == "catchup" and found:
            GAPS_FOUND.labels(self._exchange, job.symbol).inc()
        if filled:
            GAPS_FILLED.labels(self._exchange, job.symbol).inc()
        log.info(
            "back-fill %s %s from %d: %d trades%s",
            job.reason,
            job.symbol,
            job.from_id,
            fetched,
            "" if complete else " (incomplete)",
        )
