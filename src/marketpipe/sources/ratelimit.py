"""Outgoing rate limits: messages per second on a WebSocket, request weight per minute on REST.

Both are local, conservative mirrors of limits the exchange enforces by disconnecting or banning
us; staying under them is cheaper than recovering from a ban.
"""

import asyncio
import logging
import random
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class MessagePacer:
    """Spaces outgoing messages at least `1 / rate` seconds apart, with no burst.

    Binance closes a stream connection that receives more than 5 messages a second. A token
    bucket would allow a burst on top of the steady rate and can trip that limit within one
    rolling second, so we pace evenly instead.
    """

    def __init__(self, rate_per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_second <= 0:
            raise ValueError(f"rate_per_second must be positive, got {rate_per_second}")
        self._interval = 1.0 / rate_per_second
        self._clock = clock
        self._next_slot = 0.0
        self._lock = asyncio.Lock()

    @property
    def interval(self) -> float:
        return self._interval

    async def wait(self) -> None:
        """Return when the next message may be sent; callers are served in arrival order."""
        async with self._lock:
            now = self._clock()
            delay = self._next_slot - now
            if delay > 0:
                await asyncio.sleep(delay)
                now = self._clock()
            self._next_slot = max(now, self._next_slot) + self._interval


class WeightBudget:
    """Request weight spent in the current wall-clock minute, capped at `per_minute`.

    Binance counts `REQUEST_WEIGHT` per IP per calendar minute and reports what it has counted
    in `X-MBX-USED-WEIGHT-1M`. We count locally before sending (so concurrent requests never
    overshoot) and take the server's figure when it is higher (other processes share the IP).
    """

    def __init__(
        self, per_minute: int, clock: Callable[[], float] = time.time, poll_s: float = 1.0
    ) -> None:
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, got {per_minute}")
        self.per_minute = per_minute
        self._clock = clock
        self._poll_s = poll_s  # re-check at least this often while waiting
        self._minute = int(clock() // 60)
        self._used = 0

    @property
    def used(self) -> int:
        self._roll()
        return self._used

    def _roll(self) -> None:
        minute = int(self._clock() // 60)
        if minute != self._minute:
            self._minute = minute
            self._used = 0

    async def acquire(self, weight: int) -> None:
        """Wait until `weight` fits in this minute's budget, then spend it."""
        weight = min(weight, self.per_minute)  # a request heavier than the budget still runs
        warned = False
        while True:
            self._roll()
            if self._used + weight <= self.per_minute:
                self._used += weight
                return
            wait = (self._minute + 1) * 60 - self._clock() + 0.05
            if not warned:
                warned = True
                log.warning(
                    "REST weight budget spent (%d/%d this minute); waiting %.1f s",
                    self._used,
                    self.per_minute,
                    wait,
                )
            await asyncio.sleep(min(max(wait, 0.05), self._poll_s))

    def observe(self, used_header: str | None) -> None:
        """Adopt the server's count of used weight when it exceeds ours."""
        if used_header is None:
            return
        try:
            used = int(used_header)
        except ValueError:
            return
        self._roll()
        self._used = max(self._used, used)


def backoff_delay(
    attempt: int, initial_s: float, max_s: float, rng: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with jitter: `initial * 2**attempt`, capped, then scaled into
    `[0.5, 1.0)` of that so many clients reconnecting at once spread out."""
    base = min(max_s, initial_s * (2.0 ** min(attempt, 32)))
    return base * (0.5 + 0.5 * rng())
