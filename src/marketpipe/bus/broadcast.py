"""Committed batches fanned out to in-process listeners (the WebSocket hub, the dashboard).

Whatever commits — the embedded pipeline after each storage transaction, or in cluster mode a
Redis pub/sub reader — calls `publish`. It is thread-safe and never blocks the committer: each
subscriber is an asyncio queue on its own loop, fed with `call_soon_threadsafe`. A subscriber
that falls behind loses its oldest batches (and counts them) rather than slowing the engine.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from marketpipe.model.batch import CommitBatch

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Committed:
    """One committed batch and when its commit finished (`time.perf_counter_ns`)."""

    batch: CommitBatch
    committed_ns: int


@dataclass(eq=False)
class Subscription:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Committed]
    # Called on the subscriber's loop instead of queueing (one loop hop less per push).
    callback: Callable[[Committed], None] | None = None
    dropped: int = 0

    async def get(self) -> Committed:
        return await self.queue.get()

    def _offer(self, item: Committed) -> None:
        # Runs on the subscriber's loop.
        if self.callback is not None:
            try:
                self.callback(item)
            except Exception:  # a listener's bug must not end the broadcast
                log.exception("commit listener failed")
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
            if self.dropped == 1:  # once: a stuck listener would otherwise log every commit
                log.warning(
                    "a commit listener fell %d batches behind: dropping its oldest "
                    "(counted in Subscription.dropped)",
                    self.queue.maxsize,
                )
        self.queue.put_nowait(item)


class CommitBroadcaster:
    def __init__(self, max_pending: int = 1000) -> None:
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._subscribers: list[Subscription] = []

    def subscribe(self, callback: Callable[[Committed], None] | None = None) -> Subscription:
        """Listen from the running event loop: `await sub.get()`, or `callback(item)` called
        on this loop for each batch."""
        sub = Subscription(asyncio.get_running_loop(), asyncio.Queue(self.max_pending), callback)
        with self._lock:
            self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    def publish(self, batch: CommitBatch, committed_ns: int | None = None) -> None:
        """Hand a committed batch to every subscriber; safe from any thread."""
        item = Committed(batch, time.perf_counter_ns() if committed_ns is None else committed_ns)
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            try:
                sub.loop.call_soon_threadsafe(sub._offer, item)
            except RuntimeError:  # its loop has closed
                self.unsubscribe(sub)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)
