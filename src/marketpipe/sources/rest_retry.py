"""The retry loop every venue's REST client shares: attempts, backoff, and rate-limit sit-outs.

A venue's client makes one attempt at a time (`once`) and decides what its answers mean: a
success returns, a failure worth repeating raises `Retryable`, anything else (a request that
is wrong, such as a 4xx other than a rate limit) raises SourceError at once. `RestRetry`
repeats the attempt up to `max_attempts` times:

- after a plain `Retryable` (5xx, a transport error) it waits an exponential backoff with
  jitter (`ratelimit.backoff_delay`);
- a rate limit blocks the client (`block_for`): every request waits it out before its next
  attempt, not just the one that got it, so the retry itself adds no backoff on top;
- when the attempts run out, SourceError names the path and the last failure.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from marketpipe.model.errors import SourceError
from marketpipe.sources.ratelimit import backoff_delay

T = TypeVar("T")


class Retryable(Exception):
    """A failure worth another attempt; `pause_s`: the wait a rate limit asked for (already
    applied with `RestRetry.block_for`), None for an ordinary failure."""

    def __init__(self, message: str, pause_s: float | None = None) -> None:
        super().__init__(message)
        self.pause_s = pause_s


class RestRetry:
    """Attempts of one REST client, and the pause a rate limit puts on all its requests."""

    def __init__(self, max_attempts: int, backoff_initial_s: float, backoff_max_s: float) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.max_attempts = max_attempts
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._blocked_until = 0.0  # monotonic time before which no request is sent

    def block_for(self, seconds: float) -> None:
        """Hold every request of this client for `seconds` from now (never shortens a pause)."""
        self._blocked_until = max(self._blocked_until, time.monotonic() + seconds)

    @property
    def blocked_s(self) -> float:
        """How long requests are still held, in seconds (0 when they may go)."""
        return max(0.0, self._blocked_until - time.monotonic())

    async def call(self, path: str, once: Callable[[], Awaitable[T]]) -> T:
        """`once()`'s result, attempted up to `max_attempts` times; SourceError after that."""
        last = ""
        for attempt in range(self.max_attempts):
            pause = self.blocked_s
            if pause > 0:
                await asyncio.sleep(pause)
            try:
                return await once()
            except Retryable as exc:
                last = str(exc)
                if attempt + 1 < self.max_attempts and exc.pause_s is None:
                    await asyncio.sleep(backoff_delay(attempt, *self._backoff))
        raise SourceError(f"GET {path} failed after {self.max_attempts} attempts: {last}")
