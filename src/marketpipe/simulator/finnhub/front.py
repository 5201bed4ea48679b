"""Finnhub's front: the trades WebSocket at `/` (`ws://host:port?token=...`).

    front = FinnhubFront(stock_market(["AAPL", "MSFT"], 50, seed=1), token="t")
    await front.start()
    front.ws_url    # ws://127.0.0.1:PORT   (wss://ws.finnhub.io)

`hours=MarketHours()` keeps US market hours (no trades outside the session); by default
stocks trade around the clock, so a demo always shows them. Every fault of the plan applies
as on Binance (drop, duplicate, reorder of trade messages, malformed frames, disconnects,
stalls); Finnhub announces no maintenance closes, so there is no server-shutdown notice.
Finnhub's REST API serves no tick history on the free tier, so the front has no REST routes.
"""

from __future__ import annotations

from aiohttp import web

from marketpipe.model.records import Trade
from marketpipe.simulator.faults import FaultPlan
from marketpipe.simulator.feed import Frame
from marketpipe.simulator.finnhub.feed import FinnhubFeed
from marketpipe.simulator.finnhub.hours import MarketHours
from marketpipe.simulator.finnhub.session import FinnhubSession
from marketpipe.simulator.front import VenueFront
from marketpipe.simulator.market import SyntheticMarket


class FinnhubFront(VenueFront):
    venue = "finnhub"

    def __init__(
        self,
        feed: FinnhubFeed | SyntheticMarket,
        faults: FaultPlan | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str = "sandbox",
        max_symbols: int = 50,
        hours: MarketHours | None = None,
        ping_every_s: float = 10.0,
        batch_max: int = 50,
        tick_s: float = 0.002,
        record_send_times: bool = False,
    ) -> None:
        super().__init__(faults, host, port, tick_s=tick_s, record_send_times=record_send_times)
        self.feed = (
            FinnhubFeed(
                feed, hours=hours, batch_max=batch_max, ping_every_us=int(ping_every_s * 1e6)
            )
            if isinstance(feed, SyntheticMarket)
            else feed
        )
        self.token = token
        self.max_symbols = max_symbols
        self.rejected = 0  # connections refused for a wrong token

    async def __aenter__(self) -> FinnhubFront:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def url_with_token(self, token: str | None = None) -> str:
        return f"{self.ws_url}?token={self.token if token is None else token}"

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/", self._ws_handler)]

    def poll(self, now_us: int) -> list[Frame]:
        return self.feed.poll(now_us)

    def ground_truth(self) -> list[Trade]:
        return self.feed.ground_truth()

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        session = FinnhubSession(self, ws, request)
        await self.serve(session, session.run)
        return ws
