"""Coinbase Exchange's front: the ws-feed at `/` and public REST, on the shared front.

    front = CoinbaseFront(market)        # a SyntheticMarket whose exchange is "coinbase"
    front = CoinbaseFront(RecordedCoinbaseFeed("cryptofeed-COINBASE.ws.28.0.gz"))
    await front.start()
    front.ws_url    # ws://127.0.0.1:PORT      (wss://ws-feed.exchange.coinbase.com)
    front.rest_url  # http://127.0.0.1:PORT    (https://api.exchange.coinbase.com)

Coinbase has no server-shutdown notice, so that fault does nothing here; the others (drop,
duplicate, reorder, malformed, disconnect, stall, REST 429 and delay) apply as on Binance.
"""

from __future__ import annotations

from aiohttp import web

from marketpipe.model.records import Trade
from marketpipe.simulator.coinbase.feed import CoinbaseFeed, CoinbaseSource
from marketpipe.simulator.coinbase.rest import CoinbaseRest
from marketpipe.simulator.coinbase.session import CoinbaseSession
from marketpipe.simulator.faults import FaultPlan
from marketpipe.simulator.feed import Frame
from marketpipe.simulator.front import VenueFront
from marketpipe.simulator.market import SyntheticMarket
from marketpipe.simulator.ratelimit import TokenBucket


class CoinbaseFront(VenueFront):
    venue = "coinbase"

    def __init__(
        self,
        feed: CoinbaseSource | SyntheticMarket,
        faults: FaultPlan | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tick_s: float = 0.002,
        record_send_times: bool = False,
        rest_requests_per_s: float = 10.0,
        rest_burst: float = 15.0,
        subscribe_timeout_s: float = 5.0,
        history_per_symbol: int = 1_000_000,
    ) -> None:
        super().__init__(faults, host, port, tick_s=tick_s, record_send_times=record_send_times)
        self.feed: CoinbaseSource = (
            CoinbaseFeed(feed, history_per_symbol) if isinstance(feed, SyntheticMarket) else feed
        )
        self.subscribe_timeout_s = subscribe_timeout_s
        self.rest = CoinbaseRest(self, TokenBucket(rest_requests_per_s, rest_burst))

    async def __aenter__(self) -> CoinbaseFront:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/", self._ws_handler), *self.rest.routes()]

    def poll(self, now_us: int) -> list[Frame]:
        return self.feed.poll(now_us)

    def ground_truth(self) -> list[Trade]:
        return self.feed.ground_truth()

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise web.HTTPNotFound(text='{"message":"NotFound"}', content_type="application/json")
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        session = CoinbaseSession(self, ws, request)
        await self.serve(session, session.run)
        return ws
