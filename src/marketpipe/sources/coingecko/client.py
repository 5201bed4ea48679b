"""CoinGecko's REST API as one call: `GET {rest_url}/coins/markets` for the configured coins.

- Requests are spaced by a local moving-window limit (`limits`) of `requests_per_minute`,
  so we never send the burst that earns a 429 in the first place.
- A 429 raises `RateLimited` with the wait the server asked for (`Retry-After`, seconds or
  an HTTP date), or `rate_limit_pause_s` without one; the poller waits it out.
- Transport errors, timeouts and 5xx raise `Unavailable`; other answers (401 for a bad key,
  400 for an unknown currency) raise `Refused`. Both are SourceErrors; the poller retries
  with backoff and reports them in health, it never crashes.
- A 200 answer is parsed row by row (`markets.parse_markets`): what does not parse is dead
  lettered, the rest are snapshots.
"""

import asyncio
import logging
import time
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Final, Self

import httpx
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from marketpipe.model.errors import SourceError
from marketpipe.observability.metrics import REST_REQUESTS
from marketpipe.sources.coingecko.markets import SOURCE, ParsedMarkets, parse_markets
from marketpipe.sources.coingecko.settings import CoinGeckoSettings

log = logging.getLogger(__name__)

ENDPOINT: Final = "/coins/markets"
PER_PAGE: Final = 250  # CoinGecko's largest page: every configured coin in one call


class Unavailable(SourceError):
    """The server could not be reached, timed out or failed (5xx)."""


class Refused(SourceError):
    """The server answered with an error that is not about the rate (401, 400, ...)."""


class RateLimited(SourceError):
    """HTTP 429: wait `retry_after_s` before the next request."""

    def __init__(self, retry_after_s: float, header: str | None) -> None:
        super().__init__(f"HTTP 429 (Retry-After: {header})")
        self.retry_after_s = retry_after_s


def retry_after_s(header: str | None, default_s: float, max_s: float) -> float:
    """`Retry-After` (delay-seconds or an HTTP date) as seconds from now, within [0, max_s];
    `default_s` when it is absent or unreadable."""
    if header is None or not header.strip():
        return min(default_s, max_s)
    text = header.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(text).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return min(default_s, max_s)
    if seconds != seconds:  # NaN
        return min(default_s, max_s)
    return min(max(seconds, 0.0), max_s)


class MarketsClient:
    """One `/coins/markets` request at a time, within the configured rate."""

    def __init__(self, settings: CoinGeckoSettings, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=settings.rest_timeout_s)
        self._limit = RateLimitItemPerMinute(settings.requests_per_minute)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self.url = settings.rest_url.rstrip("/") + ENDPOINT
        self.params = {
            "vs_currency": settings.vs_currency,
            "ids": ",".join(settings.coin_ids),
            "per_page": str(PER_PAGE),
            "page": "1",
        }

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def _within_rate(self) -> None:
        """Wait until the local per-minute window has room for one more request."""
        while not await self._limiter.hit(self._limit, SOURCE):
            stats = await self._limiter.get_window_stats(self._limit, SOURCE)
            wait = max(0.05, stats.reset_time - time.time())
            rate = self.settings.requests_per_minute
            log.info("coingecko: %d requests a minute spent; waiting %.1f s", rate, wait)
            await asyncio.sleep(wait)

    async def fetch(self) -> ParsedMarkets:
        """The configured coins' market data. Raises RateLimited, Unavailable or Refused."""
        await self._within_rate()
        settings = self.settings
        try:
            response = await self._http.get(
                self.url, params=self.params, headers=settings.headers()
            )
        except httpx.HTTPError as exc:
            REST_REQUESTS.labels(SOURCE, ENDPOINT, "error").inc()
            raise Unavailable(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
        recv_us = time.time_ns() // 1000
        status = response.status_code
        REST_REQUESTS.labels(SOURCE, ENDPOINT, str(status)).inc()
        if status == 429:
            header = response.headers.get("retry-after")
            wait = retry_after_s(header, settings.rate_limit_pause_s, settings.max_retry_after_s)
            raise RateLimited(wait, header)
        if status >= 500:
            raise Unavailable(f"HTTP {status}: {response.text[:200]}")
        if status != 200:
            raise Refused(f"HTTP {status}: {response.text[:200]}")
        return parse_markets(response.content, settings.vs_currency, recv_us, _context(self.url))


def _context(url: str) -> str:
    """Where a dead letter came from; the key travels in a header, never in the URL."""
    return f"rest:{url}"[:200]
