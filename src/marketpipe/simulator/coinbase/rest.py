"""Coinbase Exchange public REST over the simulated tape.

- `GET /products/{id}/trades?limit=N&after=ID&before=ID`: newest first. `after` pages to
  OLDER trades (ids below the cursor), `before` to newer ones (ids above it, the nearest
  first page of them). Response headers `CB-BEFORE` (the page's newest id) and `CB-AFTER`
  (its oldest id) are the cursors for the next page either way.
- Trade objects are `{time, trade_id, price, size, side}`, decimal strings; `side` is the
  MAKER's side, as in `match` messages.
- `GET /products`, `/products/{id}` and `/time`.
- Public endpoints allow 10 requests a second per IP, bursts of 15; beyond that, 429 with
  `{"message": "Public rate limit exceeded"}`. Fault-plan 429s and 418s both answer so
  (Coinbase has no 418).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

from marketpipe.simulator.formats import decimals_of, fixed, iso_us
from marketpipe.simulator.ratelimit import TokenBucket
from marketpipe.simulator.symbols import SymbolSpec

if TYPE_CHECKING:
    from marketpipe.simulator.coinbase.front import CoinbaseFront

_encoder = msgspec.json.Encoder()
MAX_LIMIT = 1000
Handler = Callable[[web.Request], Awaitable[web.Response]]


class CoinbaseError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=_encoder.encode(body),
        status=status,
        content_type="application/json",
        headers=headers or {},
    )


def _cursor(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise CoinbaseError(400, f"Invalid {name}") from None


class CoinbaseRest:
    def __init__(self, front: CoinbaseFront, limiter: TokenBucket) -> None:
        self.front = front
        self.limiter = limiter
        self.requests = 0
        self.status_counts: dict[int, int] = {}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/time", self._endpoint(self.server_time)),
            web.get("/products", self._endpoint(self.products)),
            web.get("/products/{product_id}", self._endpoint(self.product)),
            web.get("/products/{product_id}/trades", self._endpoint(self.trades)),
        ]

    def _endpoint(self, handler: Callable[[web.Request], web.Response]) -> Handler:
        async def endpoint(request: web.Request) -> web.Response:
            self.requests += 1
            response = await self._answer(request, handler)
            self.status_counts[response.status] = self.status_counts.get(response.status, 0) + 1
            return response

        return endpoint

    async def _answer(
        self, request: web.Request, handler: Callable[[web.Request], web.Response]
    ) -> web.Response:
        forced = await self.front.rest_fault()
        if forced is not None or not self.limiter.take(str(request.remote)):
            return _json({"message": "Public rate limit exceeded"}, status=429)
        try:
            return handler(request)
        except CoinbaseError as exc:
            return _json({"message": exc.message}, status=exc.status)

    def _spec(self, request: web.Request) -> SymbolSpec:
        spec = self.front.feed.spec(request.match_info["product_id"])
        if spec is None:
            raise CoinbaseError(404, "NotFound")
        return spec

    # -- endpoints ---------------------------------------------------------------------------------

    def server_time(self, request: web.Request) -> web.Response:
        now_us = time.time_ns() // 1000
        return _json({"iso": iso_us(now_us), "epoch": now_us / 1e6})

    def products(self, request: web.Request) -> web.Response:
        return _json([_product(s) for s in self.front.feed.specs])

    def product(self, request: web.Request) -> web.Response:
        return _json(_product(self._spec(request)))

    def trades(self, request: web.Request) -> web.Response:
        spec = self._spec(request)
        tape = self.front.feed.tape(spec.native)
        assert tape is not None
        raw_limit = request.query.get("limit", str(MAX_LIMIT))
        try:
            limit = int(raw_limit)
        except ValueError:
            raise CoinbaseError(400, "Invalid limit") from None
        if limit < 1:
            raise CoinbaseError(400, "Invalid limit")
        limit = min(limit, MAX_LIMIT)
        after, before = _cursor(request, "after"), _cursor(request, "before")
        n = len(tape)
        if after is not None:  # older than the cursor: the newest `limit` of them
            stop = tape.index_of_id(after)
            start = max(0, stop - limit)
        elif before is not None:  # newer than the cursor: the nearest `limit` of them
            start = tape.index_of_id(before + 1)
            stop = min(n, start + limit)
        else:
            start, stop = max(0, n - limit), n
        price_dp, size_dp = decimals_of(spec.tick_units), decimals_of(spec.step_units)
        ids = tape.col("trade_id")[start:stop].tolist()
        price = tape.col("price_units")[start:stop].tolist()
        qty = tape.col("qty_units")[start:stop].tolist()
        ts = tape.col("ts_us")[start:stop].tolist()
        maker = tape.col("buyer_maker")[start:stop].tolist()
        body = [
            {
                "time": iso_us(t),
                "trade_id": i,
                "price": fixed(p, price_dp),
                "size": fixed(q, size_dp),
                "side": "buy" if m else "sell",  # the maker's side
            }
            for i, p, q, t, m in zip(ids, price, qty, ts, maker, strict=True)
        ][::-1]
        headers = {"CB-BEFORE": str(ids[-1]), "CB-AFTER": str(ids[0])} if ids else {}
        return _json(body, headers=headers)


def _product(spec: SymbolSpec) -> dict[str, object]:
    return {
        "id": spec.native,
        "base_currency": spec.base,
        "quote_currency": spec.quote,
        "quote_increment": fixed(spec.tick_units, decimals_of(spec.tick_units)),
        "base_increment": fixed(spec.step_units, decimals_of(spec.step_units)),
        "display_name": spec.native.replace("-", "/"),
        "min_market_funds": "1",
        "margin_enabled": False,
        "post_only": False,
        "limit_only": False,
        "cancel_only": False,
        "status": "online",
        "status_message": "",
        "trading_disabled": False,
        "fx_stablecoin": False,
        "max_slippage_percentage": "0.03000000",
        "auction_mode": False,
        "high_bid_limit_percentage": "",
    }
