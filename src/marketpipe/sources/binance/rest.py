"""Binance spot REST client for what the connector needs: exchangeInfo and trade back-fill.

Rules from Binance's spot REST documentation ("LIMITS"):
- every route has a weight; the IP may spend `REQUEST_WEIGHT` per minute, reported back in
  `X-MBX-USED-WEIGHT-1M`;
- HTTP 429 means "back off now"; ignoring it escalates to HTTP 418, an IP ban;
- both carry `Retry-After` (seconds): how long to wait to avoid, or sit out, the ban.
"""

import json
import logging
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Final, Self

import httpx
import msgspec

from marketpipe.model.errors import SourceError
from marketpipe.model.records import Trade
from marketpipe.model.symbols import SymbolMap
from marketpipe.observability.metrics import PRODUCER_ERRORS, REST_REQUESTS
from marketpipe.sources.binance.settings import BinanceSettings
from marketpipe.sources.ratelimit import WeightBudget
from marketpipe.sources.rest_retry import RestRetry, Retryable

log = logging.getLogger(__name__)

EXCHANGE: Final = "binance"
# Route weights from the spot REST documentation.
WEIGHT_EXCHANGE_INFO: Final = 20
WEIGHT_HISTORICAL_TRADES: Final = 25
WEIGHT_AGG_TRADES: Final = 4
MAX_PAGE: Final = 1000
DEFAULT_RETRY_AFTER_S: Final = 60.0


class RestTrade(msgspec.Struct):
    """One entry of `/api/v3/historicalTrades`; prices arrive as decimal strings."""

    id: int
    price: str
    qty: str
    time: int
    isBuyerMaker: bool
    quoteQty: str = ""
    isBestMatch: bool = True


_trades_decoder = msgspec.json.Decoder(list[RestTrade])


def _retry_after_s(response: httpx.Response) -> float:
    raw = response.headers.get("Retry-After")
    try:
        return max(0.0, float(raw)) if raw is not None else DEFAULT_RETRY_AFTER_S
    except ValueError:
        return DEFAULT_RETRY_AFTER_S


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and "msg" in body:
        return f"code {body.get('code')}: {body['msg']}"
    return str(body)[:200]


class BinanceRestClient:
    """Weight-aware client of Binance's public spot REST endpoints.

    Pass an `httpx.AsyncClient` to share a connection pool; otherwise one is created (and
    closed by `aclose`). Failures after `max_attempts` raise SourceError.
    """

    def __init__(
        self,
        settings: BinanceSettings,
        client: httpx.AsyncClient | None = None,
        *,
        symbol_map: SymbolMap | None = None,
        max_attempts: int = 5,
    ) -> None:
        self._settings = settings
        self._base = settings.rest_url.rstrip("/")
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=settings.rest_timeout_s)
        self._timeout = settings.rest_timeout_s
        self.symbol_map = symbol_map or SymbolMap()
        self.budget = WeightBudget(settings.rest_weight_per_minute)
        # While a 429/418 is being sat out, every request waits, not just the one that got it.
        self._retry = RestRetry(max_attempts, settings.backoff_initial_s, settings.backoff_max_s)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def exchange_info(self, symbols_native: Sequence[str] | None = None) -> dict[str, Any]:
        """`/api/v3/exchangeInfo`, optionally for some symbols only."""
        params: dict[str, str] = {}
        if symbols_native:
            params["symbols"] = json.dumps(
                [s.upper() for s in symbols_native], separators=(",", ":")
            )
        body = await self._get("/api/v3/exchangeInfo", params, WEIGHT_EXCHANGE_INFO)
        info = json.loads(body)
        if not isinstance(info, dict) or not isinstance(info.get("symbols"), list):
            raise SourceError("exchangeInfo response has no 'symbols' list")
        return info

    async def symbol_map_from_exchange_info(self, symbols_native: Sequence[str]) -> SymbolMap:
        """A SymbolMap seeded from exchangeInfo's base/quote assets; also adopted by this client."""
        info = await self.exchange_info(symbols_native)
        self.symbol_map = SymbolMap.from_exchange_info(info["symbols"])
        return self.symbol_map

    async def historical_trades(self, symbol_native: str, from_id: int, limit: int) -> list[Trade]:
        """Trades of `symbol_native` with ids from `from_id` on, oldest first (≤ 1000)."""
        if from_id < 0:
            raise ValueError(f"from_id must be >= 0, got {from_id}")
        params = {
            "symbol": symbol_native.upper(),
            "fromId": str(from_id),
            "limit": str(max(1, min(limit, MAX_PAGE))),
        }
        body = await self._get("/api/v3/historicalTrades", params, WEIGHT_HISTORICAL_TRADES)
        try:
            rows = _trades_decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise SourceError(f"historicalTrades for {symbol_native}: bad body: {exc}") from None
        return self._to_trades(symbol_native, rows)

    async def first_trade_id_at(self, symbol_native: str, time_ms: int) -> int | None:
        """The id of the first trade at or after `time_ms` (from `aggTrades`, whose rows name
        their first trade id), or None if no trade came after it."""
        params = {"symbol": symbol_native.upper(), "startTime": str(time_ms), "limit": "1"}
        body = await self._get("/api/v3/aggTrades", params, WEIGHT_AGG_TRADES)
        try:
            rows = msgspec.json.decode(body, type=list[dict[str, Any]])
        except msgspec.DecodeError as exc:
            raise SourceError(f"aggTrades for {symbol_native}: bad body: {exc}") from None
        return int(rows[0]["f"]) if rows else None

    def _to_trades(self, symbol_native: str, rows: list[RestTrade]) -> list[Trade]:
        symbol = self.symbol_map.normalize(symbol_native)
        recv_us = time.time_ns() // 1000
        trades: list[Trade] = []
        for row in rows:
            try:
                price, qty = float(row.price), float(row.qty)
            except ValueError:
                price = qty = -1.0
            if not (price > 0 and qty > 0 and row.time > 0):
                PRODUCER_ERRORS.labels(EXCHANGE, "rest_bad_trade").inc()
                log.warning("skipping malformed REST trade %s of %s", row.id, symbol_native)
                continue
            trades.append(
                Trade(
                    exchange=EXCHANGE,
                    symbol=symbol,
                    trade_id=row.id,
                    price=price,
                    qty=qty,
                    # isBuyerMaker: the maker bought, so the taker sold.
                    side="sell" if row.isBuyerMaker else "buy",
                    ts_event=row.time * 1000,
                    ts_recv=recv_us,
                )
            )
        return trades

    @property
    def max_attempts(self) -> int:
        return self._retry.max_attempts

    async def _get(self, path: str, params: dict[str, str], weight: int) -> bytes:
        return await self._retry.call(path, lambda: self._get_once(path, params, weight))

    async def _get_once(self, path: str, params: dict[str, str], weight: int) -> bytes:
        await self.budget.acquire(weight)
        try:
            response = await self._client.get(
                self._base + path, params=params, timeout=self._timeout
            )
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            REST_REQUESTS.labels(EXCHANGE, path, "error").inc()
            PRODUCER_ERRORS.labels(EXCHANGE, "rest_transport").inc()
            raise Retryable(f"{type(exc).__name__}: {exc}") from None
        status = response.status_code
        REST_REQUESTS.labels(EXCHANGE, path, str(status)).inc()
        self.budget.observe(response.headers.get("X-MBX-USED-WEIGHT-1M"))
        if status == 200:
            return response.content
        PRODUCER_ERRORS.labels(EXCHANGE, f"rest_{status}").inc()
        if status in (429, 418):
            wait = _retry_after_s(response)
            self._retry.block_for(wait)
            what = "IP banned" if status == 418 else "rate limited"
            log.warning("Binance %s on %s; waiting %.1f s (Retry-After)", what, path, wait)
            raise Retryable(f"HTTP {status} ({what}): {_error_text(response)}", pause_s=wait)
        if status >= 500:
            raise Retryable(f"HTTP {status}: {_error_text(response)}")
        # Other 4xx: our request is wrong; repeating it cannot help.
        raise SourceError(f"GET {path} {params} -> HTTP {status}: {_error_text(response)}")
