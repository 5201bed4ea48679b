"""Coinbase Exchange public REST: trade history by id, for gap back-fill.

`GET /products/{product_id}/trades?limit=N&after=ID` (Coinbase's cursor pagination):
- pages are newest first; `after=ID` answers trades OLDER than ID (ids below it, ID itself
  excluded), the newest `limit` of them; the `CB-AFTER` header is the cursor of the next,
  older page (the page's oldest id);
- `limit` is at most 1000;
- `side` is the MAKER's side, as in ws `match` messages.

So the ids `[from_id, from_id + limit)` are one request: `after=from_id + limit`, reversed.
When the product's newest id is below `from_id + limit - 1`, the page also holds ids below
`from_id`; they are dropped, and the short answer tells the back-filler it reached the
present.

Public endpoints allow 10 requests a second per IP (bursts of 15); beyond that HTTP 429,
usually without `Retry-After`. Requests are paced evenly below the limit, a 429 pauses every
request (for `Retry-After` or `rate_limit_pause_s`), 5xx and transport errors are retried
with backoff, other 4xx fail at once; after `max_attempts` a SourceError.
"""

import logging
import time
from datetime import datetime
from types import TracebackType
from typing import Final, Literal, Self

import httpx
import msgspec

from marketpipe.model.errors import FrameError, SourceError
from marketpipe.model.records import Trade
from marketpipe.observability.metrics import PRODUCER_ERRORS, REST_REQUESTS
from marketpipe.sources.coinbase.frames import EXCHANGE, MAX_INT64, taker_side, time_us
from marketpipe.sources.coinbase.settings import CoinbaseSettings
from marketpipe.sources.ratelimit import MessagePacer
from marketpipe.sources.rest_retry import RestRetry, Retryable

log = logging.getLogger(__name__)

MAX_PAGE: Final = 1000
USER_AGENT: Final = "marketpipe"  # Coinbase refuses requests without a User-Agent


class RestTrade(msgspec.Struct):
    """One entry of `/products/{id}/trades`; decimal strings, `side` the maker's."""

    trade_id: int
    price: str
    size: str
    side: Literal["buy", "sell"]
    time: str


_trades_decoder = msgspec.json.Decoder(list[RestTrade])


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])[:200]
    return str(body)[:200]


def _time_us(text: str) -> int | None:
    """A REST trade's ISO-8601 time as UTC µs; None when it is not one."""
    try:
        return time_us(msgspec.convert(text, type=datetime))
    except (msgspec.ValidationError, FrameError, OverflowError):
        return None


class CoinbaseRestClient:
    """Paced client of Coinbase Exchange's public trade history; a `TradeHistory`.

    Symbols are normalized `BASE-QUOTE`, which is also Coinbase's product id. Pass an
    `httpx.AsyncClient` to share a pool; otherwise one is created and closed by `aclose`.
    """

    def __init__(
        self,
        settings: CoinbaseSettings,
        client: httpx.AsyncClient | None = None,
        *,
        max_attempts: int = 5,
    ) -> None:
        self._settings = settings
        self._base = settings.rest_url.rstrip("/")
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=settings.rest_timeout_s, headers={"User-Agent": USER_AGENT}
        )
        self._pacer = MessagePacer(settings.rest_requests_per_second)
        # While a 429 is sat out, every request waits.
        self._retry = RestRetry(max_attempts, settings.backoff_initial_s, settings.backoff_max_s)

    @property
    def max_attempts(self) -> int:
        return self._retry.max_attempts

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def trades_from(self, symbol: str, from_id: int, limit: int) -> list[Trade]:
        """`symbol`'s trades with ids in `[from_id, from_id + limit)`, oldest first; fewer
        than `limit` means the present was reached (or ids are missing at Coinbase)."""
        if from_id < 0:
            raise ValueError(f"from_id must be >= 0, got {from_id}")
        limit = max(1, min(limit, MAX_PAGE, MAX_INT64 - from_id))
        end = from_id + limit  # exclusive: `after` answers ids below it
        path = f"/products/{symbol}/trades"
        body = await self._get(path, {"limit": str(limit), "after": str(end)})
        try:
            rows = _trades_decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise SourceError(f"GET {path}: bad body: {exc}") from None
        wanted = {row.trade_id: row for row in rows if from_id <= row.trade_id < end}
        return self._to_trades(symbol, [wanted[i] for i in sorted(wanted)])

    def _to_trades(self, symbol: str, rows: list[RestTrade]) -> list[Trade]:
        recv_us = time.time_ns() // 1000
        trades: list[Trade] = []
        for row in rows:
            try:
                price, qty = float(row.price), float(row.size)
            except ValueError:
                price = qty = -1.0
            ts = _time_us(row.time)
            if not (0 < price < float("inf") and 0 < qty < float("inf") and ts is not None):
                PRODUCER_ERRORS.labels(EXCHANGE, "rest_bad_trade").inc()
                log.warning("skipping malformed REST trade %s of %s", row.trade_id, symbol)
                continue
            trades.append(
                Trade(
                    exchange=EXCHANGE,
                    symbol=symbol,
                    trade_id=row.trade_id,
                    price=price,
                    qty=qty,
                    side=taker_side(row.side),
                    ts_event=ts,
                    ts_recv=recv_us,
                )
            )
        return trades

    async def _get(self, path: str, params: dict[str, str]) -> bytes:
        return await self._retry.call(path, lambda: self._get_once(path, params))

    async def _get_once(self, path: str, params: dict[str, str]) -> bytes:
        await self._pacer.wait()
        try:
            response = await self._client.get(
                self._base + path, params=params, timeout=self._settings.rest_timeout_s
            )
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            REST_REQUESTS.labels(EXCHANGE, path, "error").inc()
            PRODUCER_ERRORS.labels(EXCHANGE, "rest_transport").inc()
            raise Retryable(f"{type(exc).__name__}: {exc}") from None
        status = response.status_code
        REST_REQUESTS.labels(EXCHANGE, path, str(status)).inc()
        if status == 200:
            return response.content
        PRODUCER_ERRORS.labels(EXCHANGE, f"rest_{status}").inc()
        if status == 429:
            wait = self._retry_after(response)
            self._retry.block_for(wait)
            log.warning("Coinbase rate limited on %s; waiting %.1f s", path, wait)
            raise Retryable(f"HTTP 429: {_message(response)}", pause_s=wait)
        if status >= 500:
            raise Retryable(f"HTTP {status}: {_message(response)}")
        # Other 4xx (404 NotFound for an unknown product, 400 bad params): repeating is futile.
        raise SourceError(f"GET {path} {params} -> HTTP {status}: {_message(response)}")

    def _retry_after(self, response: httpx.Response) -> float:
        raw = response.headers.get("Retry-After")
        try:
            return max(0.0, float(raw)) if raw is not None else self._settings.rate_limit_pause_s
        except ValueError:
            return self._settings.rate_limit_pause_s
