"""Batches fanned out to in-process listeners (the WebSocket hub, the dashboard), at two stages.

Whatever commits — the embedded pipeline after each storage transaction, or in cluster mode a
Redis pub/sub reader — calls `publish` once the batch is durable. The embedded pipeline also
calls `publish_provisional` as soon as the engine has folded a batch, before its commit, and
`abandon` if that commit then fails. A listener sees the provisional stage only if it asked
for it (`subscribe(..., provisional=True)`); the durable `Committed` it gets later says whether
it already had the provisional one (`early`), so it can push each part of a batch once.

All of it is thread-safe and never blocks the committer: each subscriber is an asyncio queue
on its own loop, fed with `call_soon_threadsafe` (so one subscriber sees a batch's stages in
order). A subscriber that falls behind loses its oldest items (and counts them) rather than
slowing the engine.
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
    """One committed (durable) batch and when its commit finished (`time.perf_counter_ns`).

    `early`: this subscriber already got the batch as `Provisional`, before the commit.
    """

    batch: CommitBatch
    committed_ns: int
    early: bool = False


@dataclass(frozen=True, slots=True)
class Provisional:
    """A batch the engine has folded and the store has not committed yet (it may never be:
    see `Abandoned`), and when the fold finished (`time.perf_counter_ns`)."""

    batch: CommitBatch
    folded_ns: int


@dataclass(frozen=True, slots=True)
class Abandoned:
    """A batch handed out as `Provisional` whose commit failed: it will not become durable
    in this run."""

    batch: CommitBatch
    error: str


Publication = Committed | Provisional | Abandoned


@dataclass(eq=False)
class Subscription:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Publication]
    # Called on the subscriber's loop instead of queueing (one loop hop less per push).
    callback: Callable[[Publication], None] | None = None
    # Also wants batches at the provisional stage (and their abandonment).
    provisional: bool = False
    dropped: int = 0

    async def get(self) -> Publication:
        return await self.queue.get()

    def _offer(self, item: Publication) -> None:
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
        # Batches out as Provisional and not yet committed or abandoned, by identity: the
        # batch itself (held, so its id is not reused meanwhile) and who got it.
        self._early: dict[int, tuple[CommitBatch, frozenset[Subscription]]] = {}

    def subscribe(
        self, callback: Callable[[Publication], None] | None = None, *, provisional: bool = False
    ) -> Subscription:
        """Listen from the running event loop: `await sub.get()`, or `callback(item)` called
        on this loop for each item. Without `provisional`, only `Committed` items come."""
        sub = Subscription(
            asyncio.get_running_loop(), asyncio.Queue(self.max_pending), callback, provisional
        )
        with self._lock:
            self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    def publish_provisional(self, batch: CommitBatch, folded_ns: int | None = None) -> None:
        """Hand a folded, not yet committed batch to the subscribers that want it; `publish`
        or `abandon` must follow for the same batch object. Safe from any thread."""
        item = Provisional(batch, time.perf_counter_ns() if folded_ns is None else folded_ns)
        with self._lock:
            subscribers = [s for s in self._subscribers if s.provisional]
            if subscribers:
                self._early[id(batch)] = (batch, frozenset(subscribers))
        for sub in subscribers:
            self._send(sub, item)

    def publish(self, batch: CommitBatch, committed_ns: int | None = None) -> None:
        """Hand a committed batch to every subscriber; safe from any thread."""
        done_ns = time.perf_counter_ns() if committed_ns is None else committed_ns
        with self._lock:
            subscribers = list(self._subscribers)
            early = self._early.pop(id(batch), None)
        got = early[1] if early is not None else frozenset()
        plain = Committed(batch, done_ns)
        after = Committed(batch, done_ns, early=True)
        for sub in subscribers:
            self._send(sub, after if sub in got else plain)

    def abandon(self, batch: CommitBatch, error: BaseException | str) -> None:
        """The commit of a batch published provisionally failed: tell those who got it."""
        with self._lock:
            early = self._early.pop(id(batch), None)
        if early is None:
            return
        item = Abandoned(batch, str(error))
        for sub in early[1]:
            self._send(sub, item)

    def _send(self, sub: Subscription, item: Publication) -> None:
        try:
            sub.loop.call_soon_threadsafe(sub._offer, item)
        except RuntimeError:  # its loop has closed
            self.unsubscribe(sub)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    @property
    def in_flight(self) -> int:
        """Batches published provisionally whose commit or abandonment has not come yet."""
        with self._lock:
            return len(self._early)
