"""Polls CoinGecko for ever: one batch of snapshots per poll, whatever the server does.

    poller = MarketPoller(settings.coingecko)
    async for batch in poller.batches():      # ParsedMarkets: snapshots + dead letters
        ...
    poller.status().health(now)               # last poll age, errors, 429s, for health

- A good answer is yielded, and the next poll follows `poll_interval_s` after this one began.
- A 429 waits what `Retry-After` asked (capped), never less: hammering a rate-limited API
  only extends the ban.
- A dead or failing server (and a refusal, such as a bad key) is retried with capped
  exponential backoff and jitter; each failure counts in the status and the metrics.
- A malformed body or row is yielded as dead letters (counted in `dead_letters_total`), the
  poller goes on. Nothing here raises but cancellation.

It knows nothing of storage: what becomes of a batch is its consumer's business.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from marketpipe.model.errors import SourceError
from marketpipe.observability.metrics import DEAD_LETTERS, PRODUCER_ERRORS, PRODUCER_MESSAGES
from marketpipe.sources.coingecko.client import MarketsClient, RateLimited, Refused
from marketpipe.sources.coingecko.markets import SOURCE, ParsedMarkets
from marketpipe.sources.coingecko.settings import CoinGeckoSettings
from marketpipe.sources.ratelimit import backoff_delay

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(slots=True)
class PollerStatus:
    """What health shows of the poller. Times are wall-clock seconds (time.time())."""

    url: str
    interval_s: float
    polls: int = 0  # requests answered or failed
    successes: int = 0
    errors: int = 0  # transport errors, 5xx and refusals
    rate_limited: int = 0  # 429 answers
    consecutive_failures: int = 0
    snapshots: int = 0
    dead_letters: int = 0
    last_error: str | None = None
    last_success_at: float | None = None
    last_retry_after_s: float | None = None
    next_poll_in_s: float | None = None

    def last_poll_age_s(self, now: float | None = None) -> float | None:
        if self.last_success_at is None:
            return None
        return max(0.0, (time.time() if now is None else now) - self.last_success_at)

    def health(self, now: float | None = None) -> dict[str, Any]:
        """`ok` while the last poll succeeded; `degraded` after a failure or before the first
        answer (a 429 being waited out counts as a failure: the data is getting old)."""
        ok = self.successes > 0 and self.consecutive_failures == 0
        age = self.last_poll_age_s(now)
        return {
            "status": "ok" if ok else "degraded",
            "url": self.url,
            "last_poll_age_s": None if age is None else round(age, 3),
            "polls": self.polls,
            "errors": self.errors,
            "rate_limited": self.rate_limited,
            "snapshots": self.snapshots,
            "dead_letters": self.dead_letters,
            "last_error": self.last_error,
            "last_retry_after_s": self.last_retry_after_s,
            # Market data has no trade ids: completeness is not a notion here.
            "completeness_provable": False,
        }


class MarketPoller:
    """CoinGecko's `/coins/markets`, polled every `poll_interval_s`."""

    def __init__(
        self,
        settings: CoinGeckoSettings,
        client: MarketsClient | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.client = client or MarketsClient(settings)
        self._sleep = sleep
        self._status = PollerStatus(self.client.url, settings.poll_interval_s)

    def status(self) -> PollerStatus:
        return self._status

    async def aclose(self) -> None:
        await self.client.aclose()

    async def run(self, emit: Callable[[ParsedMarkets], Awaitable[None]]) -> None:
        """Poll until cancelled, handing each batch to `emit`."""
        async for batch in self.batches():
            await emit(batch)

    async def batches(self) -> AsyncIterator[ParsedMarkets]:
        settings, status = self.settings, self._status
        key = "set" if settings.api_key is not None else "none"
        coins, every = len(settings.coin_ids), settings.poll_interval_s
        log.info("polling coingecko %s for %d coins every %.0f s (api key: %s)",
                 self.client.url, coins, every, key)  # fmt: skip
        failures = 0
        while True:
            started = time.monotonic()
            try:
                batch = await self.client.fetch()
            except RateLimited as exc:
                failures += 1
                wait = exc.retry_after_s
                status.rate_limited += 1
                status.last_retry_after_s = wait
                self._failed(str(exc), "rate_limited")
                log.warning("coingecko rate limit hit; waiting %.1f s as asked", wait)
            except SourceError as exc:
                wait = backoff_delay(failures, settings.backoff_initial_s, settings.backoff_max_s)
                failures += 1
                status.errors += 1
                reason = "rest_refused" if isinstance(exc, Refused) else "rest_unavailable"
                self._failed(str(exc), reason)
                log.warning("coingecko poll failed (%s); retrying in %.1f s", exc, wait)
            else:
                failures = 0
                self._succeeded(batch)
                yield batch
                wait = max(0.0, settings.poll_interval_s - (time.monotonic() - started))
            status.next_poll_in_s = wait
            await self._sleep(wait)

    def _failed(self, error: str, reason: str) -> None:
        status = self._status
        status.polls += 1
        status.consecutive_failures += 1
        status.last_error = error[:300]
        PRODUCER_ERRORS.labels(SOURCE, reason).inc()

    def _succeeded(self, batch: ParsedMarkets) -> None:
        status = self._status
        status.polls += 1
        status.successes += 1
        status.consecutive_failures = 0
        status.last_success_at = time.time()
        status.snapshots += len(batch.snapshots)
        status.dead_letters += len(batch.dead_letters)
        if batch.snapshots:
            PRODUCER_MESSAGES.labels(SOURCE, "market_snapshot").inc(len(batch.snapshots))
        if batch.dead_letters:
            DEAD_LETTERS.labels(SOURCE).inc(len(batch.dead_letters))
            PRODUCER_ERRORS.labels(SOURCE, "bad_frame").inc(len(batch.dead_letters))
            for dead in batch.dead_letters:
                log.warning("dead-lettered coingecko data: %s", dead.error)
