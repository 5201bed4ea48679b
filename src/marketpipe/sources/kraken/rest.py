"""Kraken spot REST client for back-fill: `GET /0/public/Trades`, paced and retried.

Kraken's REST conventions (from its documentation):
- every answer is `{"error": [...], "result": {...}}`, HTTP 200 even for most failures; a
  non-empty `error` array is the failure, as `<severity><category>:<message>` strings;
- the public endpoints are throttled per IP at about one request a second. Going over answers
  `EGeneral:Too many requests` or `EAPI:Rate limit exceeded` (Kraken's 429), or
  `EService:Throttled: <unix time>` (wait until then); proxies in front may send a real 429;
- `Trades` rows are `[price, volume, time, side, order type, misc, trade_id]`: decimal strings,
  time in seconds as a JSON number, side `b`/`s` = the taker's side, `trade_id` sequential per
  pair; `last` is a nanosecond cursor to pass as the next `since`.
"""

import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import Final, Self

import httpx
import msgspec

from marketpipe.model.errors import SourceError
from marketpipe.model.records import Side, Trade
from marketpipe.observability.metrics import PRODUCER_ERRORS, REST_REQUESTS
from marketpipe.sources.kraken.settings import KrakenSettings
from marketpipe.sources.kraken.symbols import canonical, to_rest
from marketpipe.sources.ratelimit import MessagePacer
from marketpipe.sources.rest_retry import RestRetry, Retryable

log = logging.getLogger(__name__)

EXCHANGE: Final = "kraken"
MAX_PAGE: Final = 1000
MAX_THROTTLE_WAIT_S: Final = 300.0
# Error prefixes (spaces removed) that mean "slow down" and "try again" respectively.
RATE_LIMITED: Final = ("EGeneral:Toomanyrequests", "EAPI:Ratelimitexceeded", "EService:Throttled")
TRANSIENT: Final = ("EService:Unavailable", "EService:Busy", "EService:Deadlineelapsed")

RestRow = tuple[str, str, Decimal, str, str, str, int]


class _Answer(msgspec.Struct):
    error: list[str] = []
    result: dict[str, msgspec.Raw] = {}


_answer_decoder = msgspec.json.Decoder(_Answer)
_rows_decoder = msgspec.json.Decoder(list[RestRow])
_last_decoder = msgspec.json.Decoder(str | int)


@dataclass(frozen=True, slots=True)
class TradesPage:
    trades: list[Trade]  # oldest first, as Kraken sent them
    rows: int  # rows in the answer, malformed ones included: `rows < count` is the present
    last_ns: int  # Kraken's cursor: the next `since`


def time_us(seconds: Decimal) -> int:
    """Kraken's trade time (seconds, up to 9 decimals) as µs, truncated like every time."""
    return int(seconds * 1_000_000)


class KrakenRestClient:
    """Paced client of Kraken's public `Trades`; failures after `max_attempts` raise
    SourceError. Pass an `httpx.AsyncClient` to share a pool; otherwise `aclose` closes ours."""

    def __init__(
        self,
        settings: KrakenSettings,
        client: httpx.AsyncClient | None = None,
        *,
        max_attempts: int = 5,
    ) -> None:
        self._settings = settings
        self._base = settings.rest_url.rstrip("/")
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=settings.rest_timeout_s)
        self._pacer = MessagePacer(settings.rest_requests_per_second)
        # While a rate limit is sat out, every request waits.
        self._retry = RestRetry(max_attempts, settings.backoff_initial_s, settings.backoff_max_s)
        self._limited_in_a_row = 0

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

    async def trades(self, symbol: str, since_ns: int | None, count: int) -> TradesPage:
        """Up to `count` trades of `symbol` after `since_ns` (the latest ones if None)."""
        params = {"pair": to_rest(symbol), "count": str(max(1, min(count, MAX_PAGE)))}
        if since_ns is not None:
            params["since"] = str(max(0, since_ns))
        body = await self._get("/0/public/Trades", params)
        return self._page(canonical(symbol), body)

    # -- internals ------------------------------------------------------------------------

    def _page(self, symbol: str, result: dict[str, msgspec.Raw]) -> TradesPage:
        pairs = [key for key in result if key != "last"]
        if len(pairs) != 1 or "last" not in result:
            raise SourceError(f"Trades for {symbol}: result keys {sorted(result)[:4]}")
        try:
            rows = _rows_decoder.decode(result[pairs[0]])
            last = int(_last_decoder.decode(result["last"]))
        except (msgspec.DecodeError, ValueError) as exc:
            raise SourceError(f"Trades for {symbol}: bad body: {exc}") from None
        recv_us = time.time_ns() // 1000
        trades: list[Trade] = []
        for price_text, volume_text, seconds, side, _kind, _misc, trade_id in rows:
            try:
                price, qty = float(price_text), float(volume_text)
            except ValueError:
                price = qty = -1.0
            ts = time_us(seconds) if seconds.is_finite() else 0
            if not (price > 0 and qty > 0 and ts > 0 and side in ("b", "s") and trade_id >= 0):
                PRODUCER_ERRORS.labels(EXCHANGE, "rest_bad_trade").inc()
                log.warning("skipping malformed REST trade %s of %s", trade_id, symbol)
                continue
            side_name: Side = "buy" if side == "b" else "sell"  # the taker's side
            trades.append(Trade(EXCHANGE, symbol, trade_id, price, qty, side_name, ts, recv_us))
        return TradesPage(trades, len(rows), last)

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, msgspec.Raw]:
        return await self._retry.call(path, lambda: self._get_once(path, params))

    def _rate_limited(self, what: str, pause_s: float | None = None) -> Retryable:
        if pause_s is None:  # our own pause, doubled while the limits keep coming
            pause_s = min(
                self._settings.backoff_max_s,
                self._settings.rate_limit_pause_s * 2.0 ** min(self._limited_in_a_row, 16),
            )
        self._limited_in_a_row += 1
        self._retry.block_for(pause_s)
        PRODUCER_ERRORS.labels(EXCHANGE, "rest_429").inc()
        log.warning("Kraken rate limit (%s); waiting %.1f s", what, pause_s)
        return Retryable(f"rate limited: {what}", pause_s)

    async def _get_once(self, path: str, params: dict[str, str]) -> dict[str, msgspec.Raw]:
        await self._pacer.wait()
        try:
            response = await self._client.get(
                self._base + path, params=params, timeout=self._settings.rest_timeout_s
            )
        except httpx.HTTPError as exc:
            PRODUCER_ERRORS.labels(EXCHANGE, "rest_transport").inc()
            raise Retryable(f"{type(exc).__name__}: {exc}") from None
        status = response.status_code
        REST_REQUESTS.labels(EXCHANGE, path, str(status)).inc()
        if status == 429:
            raise self._rate_limited("HTTP 429", _retry_after_s(response))
        if status >= 500:
            PRODUCER_ERRORS.labels(EXCHANGE, f"rest_{status}").inc()
            raise Retryable(f"HTTP {status}: {response.text[:200]}")
        if status != 200:  # our request is wrong; repeating it cannot help
            PRODUCER_ERRORS.labels(EXCHANGE, f"rest_{status}").inc()
            raise SourceError(f"GET {path} {params} -> HTTP {status}: {response.text[:200]}")
        try:
            answer = _answer_decoder.decode(response.content)
        except msgspec.DecodeError as exc:
            raise Retryable(f"unreadable answer: {exc}") from None
        if answer.error:
            return self._failed(path, params, answer.error)
        self._limited_in_a_row = 0
        return answer.result

    def _failed(
        self, path: str, params: dict[str, str], errors: list[str]
    ) -> dict[str, msgspec.Raw]:
        compact = [error.replace(" ", "") for error in errors]
        text = "; ".join(errors)
        if any(e.startswith(RATE_LIMITED) for e in compact):
            raise self._rate_limited(text, _throttled_until_s(compact))
        if any(e.startswith(TRANSIENT) for e in compact):
            PRODUCER_ERRORS.labels(EXCHANGE, "rest_unavailable").inc()
            raise Retryable(text)
        PRODUCER_ERRORS.labels(EXCHANGE, "rest_error").inc()
        raise SourceError(f"GET {path} {params} -> Kraken error: {text}")


def _retry_after_s(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def _throttled_until_s(compact_errors: list[str]) -> float | None:
    """`EService:Throttled:<unix time>`: how long until then, if it says."""
    for error in compact_errors:
        if error.startswith("EService:Throttled:"):
            try:
                until = float(error.rsplit(":", 1)[1])
            except ValueError:
                return None
            return min(MAX_THROTTLE_WAIT_S, max(0.0, until - time.time()))
    return None
