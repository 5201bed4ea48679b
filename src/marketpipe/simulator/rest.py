"""Binance spot REST market-data endpoints over the simulator's feed.

Field names, types and request weights follow Binance's spot API. Weight is counted per
client IP per window; past the limit a client gets 429 with `Retry-After`, and if it keeps
asking while told to wait, 418 (Binance's auto-ban).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec
from aiohttp import web

from marketpipe.simulator.columns import format_units
from marketpipe.simulator.faults import FaultInjector
from marketpipe.simulator.feed import Feed
from marketpipe.simulator.history import TradeHistory
from marketpipe.simulator.symbols import SymbolSpec

_encoder = msgspec.json.Encoder()
KLINE_MS = {
    "1s": 1000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
    "12h": 43_200_000, "1d": 86_400_000,
}  # fmt: skip


class BinanceError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


@dataclass
class WeightLimiter:
    """REQUEST_WEIGHT per IP per window (Binance: 6000 a minute)."""

    limit: int = 6000
    window_s: float = 60.0

    def __post_init__(self) -> None:
        self._used: dict[str, tuple[int, int]] = {}  # ip -> (window index, weight used)
        self._banned_until: dict[str, float] = {}

    def charge(self, ip: str, weight: int) -> tuple[int, int | None, int]:
        """Weight used after charging, and (status, retry-after s) when refused else None."""
        now = time.time()
        window = int(now // self.window_s)
        index, used = self._used.get(ip, (window, 0))
        if index != window:
            used = 0
        used += weight
        self._used[ip] = (window, used)
        retry = max(1, math.ceil((window + 1) * self.window_s - now))
        banned = self._banned_until.get(ip, 0.0)
        if now < banned:
            # Asked again while told to back off: the ban escalates, as Binance's does.
            self._banned_until[ip] = now + 2 * (banned - now) + retry
            return used, 418, math.ceil(self._banned_until[ip] - now)
        if used > self.limit:
            self._banned_until[ip] = now + retry
            return used, 429, retry
        return used, None, 0


def _json(body: object, status: int = 200, weight: int | None = None) -> web.Response:
    headers = (
        {}
        if weight is None
        else {"X-MBX-USED-WEIGHT-1M": str(weight), "X-MBX-USED-WEIGHT": str(weight)}
    )
    return web.Response(
        body=_encoder.encode(body), status=status, content_type="application/json", headers=headers
    )


def _int_param(request: web.Request, name: str, default: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BinanceError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        ) from None


def _limit(request: web.Request, default: int, maximum: int) -> int:
    value = _int_param(request, "limit", default)
    assert value is not None
    if value <= 0:
        raise BinanceError(
            -1100, f"Illegal characters found in parameter 'limit'; legal range is '1-{maximum}'."
        )
    return min(value, maximum)


def _weigh_depth(request: web.Request) -> int:
    limit = _limit(request, 100, 5000)
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


class RestApi:
    """The `/api/v3` routes. `faults` adds random 429/418 and delay."""

    def __init__(self, feed: Feed, faults: FaultInjector, limiter: WeightLimiter) -> None:
        self.feed = feed
        self.faults = faults
        self.limiter = limiter
        self.requests = 0
        self.status_counts: dict[int, int] = {}

    def routes(self) -> list[web.RouteDef]:
        wrap = self._endpoint
        return [
            web.get("/api/v3/ping", wrap(lambda r: 1, self.ping)),
            web.get("/api/v3/time", wrap(lambda r: 1, self.server_time)),
            web.get("/api/v3/exchangeInfo", wrap(lambda r: 20, self.exchange_info)),
            web.get("/api/v3/depth", wrap(_weigh_depth, self.depth)),
            web.get("/api/v3/trades", wrap(lambda r: 25, self.trades)),
            web.get("/api/v3/historicalTrades", wrap(lambda r: 25, self.historical_trades)),
            web.get("/api/v3/aggTrades", wrap(lambda r: 4, self.agg_trades)),
            web.get("/api/v3/klines", wrap(lambda r: 2, self.klines)),
        ]

    def _endpoint(
        self, weigh: Callable[[web.Request], int], handler: Callable[[web.Request], object]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def endpoint(request: web.Request) -> web.Response:
            self.requests += 1
            response = await self._answer(request, weigh, handler)
            self.status_counts[response.status] = self.status_counts.get(response.status, 0) + 1
            return response

        return endpoint

    async def _answer(
        self,
        request: web.Request,
        weigh: Callable[[web.Request], int],
        handler: Callable[[web.Request], object],
    ) -> web.Response:
        plan = self.faults.plan
        if plan.rest_delay_s > 0:
            await asyncio.sleep(plan.rest_delay_s)
        try:
            used, refused, retry = self.limiter.charge(str(request.remote), weigh(request))
            forced = self.faults.rest_status()
            if forced is not None and refused is None:
                refused, retry = forced, plan.retry_after_s
            if refused is not None:
                if refused == 429:
                    msg = (
                        f"Too many requests; current limit of IP is {self.limiter.limit} requests"
                        " per minute. Please use the websocket for live updates to avoid polling"
                        " the API."
                    )
                else:
                    until = int((time.time() + retry) * 1000)
                    msg = (
                        f"Way too many requests; IP banned until {until}. Please use the websocket"
                        " for live updates to avoid bans."
                    )
                response = _json({"code": -1003, "msg": msg}, status=refused, weight=used)
                response.headers["Retry-After"] = str(retry)
                return response
            return _json(handler(request), weight=used)
        except BinanceError as exc:
            return _json({"code": exc.code, "msg": exc.msg}, status=exc.status)

    # -- helpers -----------------------------------------------------------------------------------

    def _symbol(self, request: web.Request) -> tuple[SymbolSpec, TradeHistory]:
        native = request.query.get("symbol", "")
        if not native:
            raise BinanceError(
                -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        for spec in self.feed.specs:
            if spec.native == native:  # Binance symbols are case sensitive
                history = self.feed.history(spec.symbol)
                assert history is not None
                return spec, history
        raise BinanceError(-1121, "Invalid symbol.")

    # -- endpoints ---------------------------------------------------------------------------------

    def ping(self, request: web.Request) -> object:
        return {}

    def server_time(self, request: web.Request) -> object:
        return {"serverTime": time.time_ns() // 1_000_000}

    def exchange_info(self, request: web.Request) -> object:
        return {
            "timezone": "UTC",
            "serverTime": time.time_ns() // 1_000_000,
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": self.limiter.limit,
                },
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
                {
                    "rateLimitType": "RAW_REQUESTS",
                    "interval": "MINUTE",
                    "intervalNum": 5,
                    "limit": 61000,
                },
            ],
            "exchangeFilters": [],
            "symbols": [_symbol_info(s) for s in self.feed.specs],
        }

    def depth(self, request: web.Request) -> object:
        spec, _ = self._symbol(request)
        limit = _limit(request, 100, 5000)
        bid, bid_qty, ask, ask_qty = self.feed.book_units(spec.symbol)
        bids, asks = (
            [[format_units(bid), format_units(bid_qty)]],
            [[format_units(ask), format_units(ask_qty)]],
        )
        for level in range(1, limit):
            # Thinner near the touch, thicker further out; deterministic per level.
            size = spec.step_units * (1 + (level * 7919) % 97) * max(1, level // 10 + 1)
            if bid - level * spec.tick_units > 0:
                bids.append([format_units(bid - level * spec.tick_units), format_units(size)])
            asks.append([format_units(ask + level * spec.tick_units), format_units(size)])
        return {"lastUpdateId": self.feed.last_update_id(spec.symbol), "bids": bids, "asks": asks}

    def trades(self, request: web.Request) -> object:
        _, history = self._symbol(request)
        limit = _limit(request, 500, 1000)
        return history.trades_json(max(0, len(history) - limit), len(history))

    def historical_trades(self, request: web.Request) -> object:
        _, history = self._symbol(request)
        limit = _limit(request, 500, 1000)
        from_id = _int_param(request, "fromId")
        if from_id is None:
            return history.trades_json(max(0, len(history) - limit), len(history))
        start = history.index_of_id(from_id)
        return history.trades_json(start, min(len(history), start + limit))

    def agg_trades(self, request: web.Request) -> object:
        _, history = self._symbol(request)
        limit = _limit(request, 500, 1000)
        from_id = _int_param(request, "fromId")
        start_time = _int_param(request, "startTime")
        end_time = _int_param(request, "endTime")
        if start_time is not None and end_time is not None and end_time - start_time > 3_600_000:
            raise BinanceError(-1127, "More than 1 hours between startTime and endTime.")
        stop = len(history) if end_time is None else history.index_of_time(end_time, side="right")
        if from_id is not None:
            start = history.index_of_agg(from_id)
        elif start_time is not None:
            start = history.index_of_time(start_time)
        else:
            return _recent_aggs(history, limit)
        return history.aggregate(start, stop, limit)

    def klines(self, request: web.Request) -> object:
        _, history = self._symbol(request)
        interval = request.query.get("interval", "")
        if interval not in KLINE_MS:
            raise BinanceError(-1120, "Invalid interval.")
        limit = _limit(request, 500, 1000)
        return history.klines(
            KLINE_MS[interval],
            _int_param(request, "startTime"),
            _int_param(request, "endTime"),
            limit,
        )


def _rate_limit(kind: str, interval: str, num: int, limit: int) -> dict[str, object]:
    return {"rateLimitType": kind, "interval": interval, "intervalNum": num, "limit": limit}


def _recent_aggs(history: TradeHistory, limit: int) -> list[dict[str, object]]:
    n = len(history)
    if not n:
        return []
    agg = history.col("agg_id")
    first_agg = max(int(agg[0]), int(agg[-1]) - limit + 1)
    return history.aggregate(history.index_of_agg(first_agg), n, limit)


def _symbol_info(spec: SymbolSpec) -> dict[str, object]:
    return {
        "symbol": spec.native,
        "status": "TRADING",
        "baseAsset": spec.base,
        "baseAssetPrecision": 8,
        "quoteAsset": spec.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": format_units(spec.tick_units),
                "maxPrice": "1000000.00000000",
                "tickSize": format_units(spec.tick_units),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": format_units(spec.step_units),
                "maxQty": "9000.00000000",
                "stepSize": format_units(spec.step_units),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }
