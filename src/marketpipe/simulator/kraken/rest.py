"""Kraken public REST over the simulated tape: `/0/public/Trades`, `AssetPairs`, `Time`.

`Trades?pair=XBTUSD&since=...&count=N` answers `{"error": [], "result": {"XXBTZUSD": rows,
"last": "<ns>"}}`, rows `[price, volume, time, side, order type, misc, trade_id]`: price and
volume decimal strings, time in seconds as a JSON number (µs), side `b`/`s` the taker's,
`trade_id` the same sequential id as WebSocket v2's. Kraken pages by time only:

- `since` is exclusive: seconds with decimals (a plain time: trades after it), or
  nanoseconds (`last` of the previous page); trades come oldest first, at most `count`
  (default and max 1000); without `since`, the latest `count` trades.
- Kraken documents `since` and `last` as timestamps, never as trade ids; the id is only the
  rows' 7th field. So `last` is the page's last trade as a unique nanosecond cursor: its µs
  time × 1000 plus its place among the trades of that very µs. Passing it back continues
  with the next trade even inside a run of equal times, so paging by `last` visits every id
  exactly once; and `since = time_us × 1000 - 1` starts a page at the first trade of that µs,
  which is how a client starts a back-fill at a trade it knows the time of.

Errors come as HTTP 200 with a non-empty `error` array: `EQuery:Unknown asset pair`,
`EGeneral:Invalid arguments`, and past the rate limit (about one request a second per IP)
`EGeneral:Too many requests`. A fault-plan 429 answers the same; a 418 answers
`EService:Throttled: <unix time>`, Kraken's "wait until then".
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

import msgspec
import numpy as np
from aiohttp import web

from marketpipe.simulator.formats import decimals_of, fixed
from marketpipe.simulator.kraken.feed import ord_type
from marketpipe.simulator.kraken.names import altname, code, internal_asset, internal_name
from marketpipe.simulator.ratelimit import TokenBucket
from marketpipe.simulator.symbols import SymbolSpec
from marketpipe.simulator.tape import TradeTape

if TYPE_CHECKING:
    from marketpipe.simulator.kraken.front import KrakenFront

MAX_COUNT = 1000
PRICE_DECIMALS = 5  # REST prints prices with at least five decimals ("30243.40000")
_SECONDS_BELOW = 10**12  # a `since` below this is seconds, above it nanoseconds
Handler = Callable[[web.Request], Awaitable[web.Response]]


class KrakenError(Exception):
    pass


_encoder = msgspec.json.Encoder(decimal_format="number")  # trade times are JSON numbers


def _answer(result: object = None, errors: list[str] | None = None) -> web.Response:
    body: dict[str, object] = {"error": errors or []}
    if result is not None:
        body["result"] = result
    return web.Response(body=_encoder.encode(body), content_type="application/json")


def parse_since(raw: str) -> tuple[int, bool]:
    """`since` as `(nanoseconds, is_cursor)`: seconds (with decimals) are a plain time, an
    integer of nanoseconds is a `last` cursor."""
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise KrakenError("EGeneral:Invalid arguments:since") from None
    if not value.is_finite() or value < 0:
        raise KrakenError("EGeneral:Invalid arguments:since")
    if value < _SECONDS_BELOW:
        return int(value * 1_000_000_000), False
    return int(value), True


def page_after(tape: TradeTape, since: int, is_cursor: bool = True) -> int:
    """Index of the first trade after `since`: a unique-ns cursor, or a plain time in ns."""
    ts = tape.col("ts_us")
    since_us, rank = divmod(since, 1000)
    if not is_cursor:
        return int(np.searchsorted(ts, since_us, side="right"))
    lo = int(np.searchsorted(ts, since_us, side="left"))
    hi = int(np.searchsorted(ts, since_us, side="right"))
    return min(hi, lo + rank + 1)


def cursor_of(tape: TradeTape, index: int) -> int:
    """The unique-ns cursor of trade `index`."""
    ts = tape.col("ts_us")
    t = int(ts[index])
    run_start = int(np.searchsorted(ts, t, side="left"))
    return t * 1000 + min(999, index - run_start)


class KrakenRest:
    def __init__(self, front: KrakenFront, limiter: TokenBucket) -> None:
        self.front = front
        self.limiter = limiter
        self.requests = 0
        self._by_name: dict[str, SymbolSpec] = {}
        for spec in front.feed.specs:
            for name in (altname(spec.base, spec.quote), internal_name(spec.base, spec.quote)):
                self._by_name[name] = spec
            self._by_name[spec.native] = spec  # the ws name works too

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/0/public/Time", self._endpoint(self.server_time)),
            web.get("/0/public/AssetPairs", self._endpoint(self.asset_pairs)),
            web.get("/0/public/Trades", self._endpoint(self.trades)),
        ]

    def _endpoint(self, handler: Callable[[web.Request], object]) -> Handler:
        async def endpoint(request: web.Request) -> web.Response:
            self.requests += 1
            forced = await self.front.rest_fault()
            if forced == 418:
                until = int(time.time()) + self.front.injector.plan.retry_after_s
                return _answer(errors=[f"EService:Throttled: {until}"])
            if forced is not None or not self.limiter.take(str(request.remote)):
                return _answer(errors=["EGeneral:Too many requests"])
            try:
                return _answer(handler(request))
            except KrakenError as exc:
                return _answer(errors=[str(exc)])

        return endpoint

    def server_time(self, request: web.Request) -> object:
        now = int(time.time())
        return {
            "unixtime": now,
            "rfc1123": time.strftime("%a, %d %b %y %H:%M:%S +0000", time.gmtime(now)),
        }

    def asset_pairs(self, request: web.Request) -> object:
        return {
            internal_name(s.base, s.quote): {
                "altname": altname(s.base, s.quote),
                "wsname": f"{code(s.base)}/{code(s.quote)}",
                "base": internal_asset(s.base),
                "quote": internal_asset(s.quote),
                "pair_decimals": decimals_of(s.tick_units),
                "lot_decimals": decimals_of(s.step_units),
                "tick_size": fixed(s.tick_units, decimals_of(s.tick_units)),
                "status": "online",
            }
            for s in self.front.feed.specs
        }

    def trades(self, request: web.Request) -> object:
        pair = request.query.get("pair", "")
        spec = self._by_name.get(pair.upper())
        if spec is None:
            raise KrakenError("EQuery:Unknown asset pair")
        tape = self.front.feed.tape(spec.native)
        assert tape is not None
        try:
            count = int(request.query.get("count", str(MAX_COUNT)))
        except ValueError:
            raise KrakenError("EGeneral:Invalid arguments:count") from None
        count = max(1, min(count, MAX_COUNT))
        raw_since = request.query.get("since")
        n = len(tape)
        if raw_since is None or raw_since == "":
            start = max(0, n - count)
        else:
            start = page_after(tape, *parse_since(raw_since))
        stop = min(n, start + count)
        price_dp = max(PRICE_DECIMALS, decimals_of(spec.tick_units))
        rows = [
            [fixed(p, price_dp), fixed(q, 8), _seconds(t), "s" if m else "b", _ord(i), "", i]
            for i, p, q, t, m in zip(
                tape.col("trade_id")[start:stop].tolist(),
                tape.col("price_units")[start:stop].tolist(),
                tape.col("qty_units")[start:stop].tolist(),
                tape.col("ts_us")[start:stop].tolist(),
                tape.col("buyer_maker")[start:stop].tolist(),
                strict=True,
            )
        ]
        if stop > start:
            last = cursor_of(tape, stop - 1)
        elif raw_since:
            last = parse_since(raw_since)[0]
        else:
            last = time.time_ns()
        return {internal_name(spec.base, spec.quote): rows, "last": str(last)}


def _seconds(ts_us: int) -> Decimal:
    """A trade time in seconds with its microseconds, printed exactly as a JSON number."""
    return Decimal(ts_us).scaleb(-6)


def _ord(trade_id: int) -> str:
    return "l" if ord_type(trade_id) == "limit" else "m"
