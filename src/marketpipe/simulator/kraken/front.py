"""Kraken's front: WebSocket v2 at `/v2` and public REST under `/0/public`.

    front = KrakenFront(market)          # a SyntheticMarket whose exchange is "kraken"
    await front.start()
    front.ws_url    # ws://127.0.0.1:PORT/v2   (wss://ws.kraken.com/v2)
    front.rest_url  # http://127.0.0.1:PORT    (https://api.kraken.com)

Every fault applies as on Binance (a dropped trade message is a gap of all the fills it
carried); the server-shutdown notice is Kraken's `status` update with system `maintenance`,
sent to every client before the close.
"""

from __future__ import annotations

from aiohttp import web

from marketpipe.model.records import Trade
from marketpipe.simulator.faults import FaultPlan
from marketpipe.simulator.feed import Frame
from marketpipe.simulator.front import VenueFront
from marketpipe.simulator.kraken import frames
from marketpipe.simulator.kraken.feed import KrakenFeed, KrakenSource
from marketpipe.simulator.kraken.rest import KrakenRest
from marketpipe.simulator.kraken.session import KrakenSession
from marketpipe.simulator.market import SyntheticMarket
from marketpipe.simulator.ratelimit import TokenBucket


class KrakenFront(VenueFront):
    venue = "kraken"
    ws_path = "/v2"

    def __init__(
        self,
        feed: KrakenSource | SyntheticMarket,
        faults: FaultPlan | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tick_s: float = 0.002,
        record_send_times: bool = False,
        rest_requests_per_s: float = 1.0,
        rest_burst: float = 5.0,
        history_per_symbol: int = 1_000_000,
    ) -> None:
        super().__init__(faults, host, port, tick_s=tick_s, record_send_times=record_send_times)
        self.feed: KrakenSource = (
            KrakenFeed(feed, history_per_symbol) if isinstance(feed, SyntheticMarket) else feed
        )
        self.rest = KrakenRest(self, TokenBucket(rest_requests_per_s, rest_burst))

    async def __aenter__(self) -> KrakenFront:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v2", self._ws_handler), *self.rest.routes()]

    def poll(self, now_us: int) -> list[Frame]:
        return self.feed.poll(now_us)

    def ground_truth(self) -> list[Trade]:
        return self.feed.ground_truth()

    def shutdown_payload(self, now_ms: int) -> bytes | None:
        return frames.status(0, system="maintenance")

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        session = KrakenSession(self, ws, request)
        await self.serve(session, session.run)
        return ws
