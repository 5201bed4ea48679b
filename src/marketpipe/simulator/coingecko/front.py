"""CoinGecko's front: the public REST API's `/api/v3/coins/markets` and `/api/v3/ping`.

    front = CoinGeckoFront.over(venues.market)   # priced at a MultiVenueMarket's fair values
    front = CoinGeckoFront.standalone(seed=7)     # or at fair values of its own
    await front.start()
    front.rest_url  # http://127.0.0.1:PORT/api/v3   (https://api.coingecko.com/api/v3)

`GET /api/v3/coins/markets?vs_currency=usd&ids=bitcoin,ethereum` answers CoinGecko's JSON
array, one object per known coin asked for (unknown ids are left out, as CoinGecko does),
ordered by market cap, with every documented field; those the simulator has no figure for
(`roi`, `ath_date`, ...) are `null`, like a real answer's. Per coin:

- `current_price`: the asset's fair value at `last_updated` (8 significant digits);
- `circulating_supply` fixed per coin (`coins.py`), `market_cap` = price x that supply,
  `fully_diluted_valuation` = price x the max (else total) supply, `total_volume` a fixed
  share of the market cap, `market_cap_rank` the rank by market cap among known coins;
- `last_updated`: the simulated clock, floored to `update_every_s` (CoinGecko refreshes
  about once a minute), so polls within one update see the same snapshot.

The rate limit is a token bucket per IP of `requests` per `per_s` seconds; past it HTTP 429
with `Retry-After` (whole seconds) and CoinGecko's error body. The fault plan applies where
REST has a meaning: `rest_delay_s`, a forced 429 (`Retry-After: retry_after_s`), a 418
(answered as CoinGecko's 503), `malformed_prob` (a truncated or garbage body), and stalls (a
request hangs until the stall ends). With `api_key` set, requests must carry it in the
`x-cg-demo-api-key` header (or `x_cg_demo_api_key` query parameter), else 401.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from aiohttp import web

from marketpipe.model.records import Trade
from marketpipe.simulator.coingecko.coins import BY_ID, COINS, SimulatedCoin
from marketpipe.simulator.coingecko.prices import PriceSource, StandaloneFairValues, market_prices
from marketpipe.simulator.faults import FaultPlan
from marketpipe.simulator.feed import Frame
from marketpipe.simulator.front import VenueFront
from marketpipe.simulator.multivenue import MultiVenueMarket
from marketpipe.simulator.ratelimit import TokenBucket

API = "/api/v3"
MAX_PER_PAGE = 250
CURRENCIES = ("usd",)  # the fair values are in USD
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_encoder = msgspec.json.Encoder()


def iso_ms(t_us: int) -> str:
    """µs since the epoch as CoinGecko prints times: `2024-02-05T07:23:50.583Z`."""
    moment = _EPOCH + timedelta(microseconds=t_us)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=_encoder.encode(body), status=status, headers=headers, content_type="application/json"
    )


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"status": {"error_code": code, "error_message": message}}, status)


class CoinGeckoFront(VenueFront):
    venue = "coingecko"

    def __init__(
        self,
        prices: PriceSource,
        faults: FaultPlan | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        requests: int = 30,
        per_s: float = 60.0,
        update_every_s: float = 1.0,
        api_key: str | None = None,
        clock: Callable[[], int] | None = None,
        tick_s: float = 0.05,
    ) -> None:
        super().__init__(faults, host, port, tick_s=tick_s)
        if requests < 1 or per_s <= 0 or update_every_s <= 0:
            raise ValueError("requests, per_s and update_every_s must be positive")
        self.prices = prices
        self.bucket = TokenBucket(requests / per_s, float(requests))
        self.update_us = max(1, round(update_every_s * 1e6))
        self.api_key = api_key
        self.clock = clock or (lambda: time.time_ns() // 1000)
        # (monotonic time, status) of every /coins/markets request, for tests to time.
        self.requests: list[tuple[float, int]] = []

    @classmethod
    def over(
        cls, market: MultiVenueMarket, faults: FaultPlan | None = None, **kwargs: Any
    ) -> CoinGeckoFront:
        """Priced at `market`'s shared fair values (the demo's several venues)."""
        return cls(market_prices(market), faults, **kwargs)

    @classmethod
    def standalone(
        cls,
        seed: int,
        faults: FaultPlan | None = None,
        *,
        start_us: int | None = None,
        **kwargs: Any,
    ) -> CoinGeckoFront:
        """Priced at fair values of its own, as a MultiVenueMarket of `seed` started at
        `start_us` (default now) would price them."""
        start = time.time_ns() // 1000 if start_us is None else start_us
        return cls(StandaloneFairValues(seed, start), faults, **kwargs)

    async def __aenter__(self) -> CoinGeckoFront:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}{API}"

    # -- VenueFront: REST only, no stream and no trades -------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [web.get(f"{API}/ping", self._ping), web.get(f"{API}/coins/markets", self._markets)]

    def poll(self, now_us: int) -> list[Frame]:
        return []

    def ground_truth(self) -> list[Trade]:
        return []

    # -- the market data ---------------------------------------------------------------------

    def updated_at(self, now_us: int | None = None) -> int:
        """The `last_updated` of an answer at `now_us`: the clock floored to an update."""
        now = self.clock() if now_us is None else now_us
        return now // self.update_us * self.update_us

    def price(self, coin: SimulatedCoin, t_us: int) -> float:
        """The coin's price at `t_us` as the API prints it (8 significant digits)."""
        return float(f"{self.prices(coin.asset, t_us):.8g}")

    def rows(self, ids: Sequence[str] | None, t_us: int) -> list[dict[str, object]]:
        """The answer's rows for `ids` (None: every coin), ordered by market cap."""
        priced = {coin.id: self.price(coin, t_us) for coin in COINS}
        caps = {cid: round(p * BY_ID[cid].circulating_supply) for cid, p in priced.items()}
        ranked = sorted(caps, key=lambda cid: (-caps[cid], cid))
        rank = {cid: i + 1 for i, cid in enumerate(ranked)}
        wanted = ranked if ids is None else [cid for cid in ranked if cid in set(ids)]
        day_ago = t_us - 86_400_000_000
        return [self._row(BY_ID[cid], priced[cid], rank[cid], day_ago, t_us) for cid in wanted]

    def _row(
        self, coin: SimulatedCoin, price: float, rank: int, day_ago: int, t_us: int
    ) -> dict[str, object]:
        cap = round(price * coin.circulating_supply)
        diluted = coin.max_supply if coin.max_supply is not None else coin.total_supply
        before = self.price(coin, day_ago)
        change = price - before
        return {
            "id": coin.id,
            "symbol": coin.symbol,
            "name": coin.name,
            "image": f"https://coin-images.coingecko.com/coins/images/{coin.id}.png",
            "current_price": price,
            "market_cap": cap,
            "market_cap_rank": rank,
            "fully_diluted_valuation": round(price * diluted),
            "total_volume": round(cap * coin.turnover),
            "high_24h": None,
            "low_24h": None,
            "price_change_24h": change,
            "price_change_percentage_24h": 100.0 * change / before if before else None,
            "market_cap_change_24h": cap - round(before * coin.circulating_supply),
            "market_cap_change_percentage_24h": 100.0 * change / before if before else None,
            "circulating_supply": coin.circulating_supply,
            "total_supply": coin.total_supply,
            "max_supply": coin.max_supply,
            "ath": None,
            "ath_change_percentage": None,
            "ath_date": None,
            "atl": None,
            "atl_change_percentage": None,
            "atl_date": None,
            "roi": None,
            "last_updated": iso_ms(t_us),
        }

    # -- handlers ----------------------------------------------------------------------------

    async def _ping(self, request: web.Request) -> web.Response:
        return _json({"gecko_says": "(V3) To the Moon!"})

    async def _markets(self, request: web.Request) -> web.Response:
        response = await self._answer_markets(request)
        self.requests.append((time.monotonic(), response.status))
        return response

    async def _answer_markets(self, request: web.Request) -> web.Response:
        forced = await self.rest_fault()
        if self.stalled():  # the server hangs; a client's timeout is its way out
            await asyncio.sleep(self.faults.stall_s)
        if self.api_key is not None:
            given = request.headers.get("x-cg-demo-api-key") or request.query.get(
                "x_cg_demo_api_key"
            )
            if given != self.api_key:
                return _error(401, 10002, "Missing or invalid API key")
        if forced == 429 or not self.bucket.take(request.remote or "?"):
            wait = (
                self.faults.retry_after_s
                if forced == 429
                else self.bucket.wait_s(request.remote or "?")
            )
            response = _error(429, 429, "You've exceeded the Rate Limit.")
            response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
            return response
        if forced is not None:  # the plan's 418: CoinGecko's outage answer
            return _error(503, 503, "Service Unavailable")
        vs = request.query.get("vs_currency", "").lower()
        if not vs:
            return _json({"error": "Missing parameter vs_currency"}, 400)
        if vs not in CURRENCIES:
            return _json({"error": "invalid vs_currency"}, 400)
        try:
            per_page = min(MAX_PER_PAGE, max(1, int(request.query.get("per_page", "100"))))
            page = max(1, int(request.query.get("page", "1")))
        except ValueError:
            return _json({"error": "invalid per_page or page"}, 400)
        raw_ids = request.query.get("ids", "")
        ids = [i.strip().lower() for i in raw_ids.split(",") if i.strip()] or None
        rows = self.rows(ids, self.updated_at())[(page - 1) * per_page : page * per_page]
        body = _encoder.encode(rows)
        garbage = self.injector.malformed(body)
        if garbage is not None:
            body = garbage
        return web.Response(body=body, content_type="application/json")
