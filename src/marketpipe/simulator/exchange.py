"""Binance spot's front: the URL stream names and SUBSCRIBE protocol, combined-stream
wrapping, Binance's frame bytes and its `/api/v3` REST, on the shared venue front.

`SimulatedExchange` keeps its name (the demo, benchmarks and tests build it directly); the
pump, faults, fan-out and server lifecycle are the shared `VenueFront`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from pathlib import Path

from aiohttp import web

from marketpipe.model.records import Trade
from marketpipe.simulator.faults import FaultPlan
from marketpipe.simulator.feed import Feed, Frame, SyntheticFeed
from marketpipe.simulator.front import VenueFront
from marketpipe.simulator.market import SyntheticMarket
from marketpipe.simulator.recorded import RecordedFeed
from marketpipe.simulator.rest import RestApi, WeightLimiter
from marketpipe.simulator.streams import ClientSession, StreamRules
from marketpipe.simulator.wire import combined, server_shutdown_payload


class SimulatedExchange(VenueFront):
    """Serve `feed` (a Feed, or a SyntheticMarket to wrap) as Binance spot on `host:port`."""

    venue = "binance"

    def __init__(
        self,
        feed: Feed | SyntheticMarket,
        faults: FaultPlan | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        rules: StreamRules | None = None,
        tick_s: float = 0.002,
        record_send_times: bool = False,
        max_send_times: int = 5_000_000,
        rest_weight_limit: int = 6000,
        rest_weight_window_s: float = 60.0,
        history_per_symbol: int = 1_000_000,
        max_queued_batches: int = 10_000,
    ) -> None:
        super().__init__(
            faults,
            host,
            port,
            tick_s=tick_s,
            record_send_times=record_send_times,
            max_send_times=max_send_times,
            max_queued_batches=max_queued_batches,
        )
        self.feed: Feed = (
            SyntheticFeed(feed, history_per_symbol) if isinstance(feed, SyntheticMarket) else feed
        )
        self.rules = rules or StreamRules()
        self.rest = RestApi(
            self.feed, self.injector, WeightLimiter(rest_weight_limit, rest_weight_window_s)
        )
        self._stream_bytes: dict[str, bytes] = {}

    async def __aenter__(self) -> SimulatedExchange:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the venue's part --------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/ws", self._ws_handler),
            web.get("/ws/{streams:.*}", self._ws_handler),
            web.get("/stream", self._ws_handler),
            *self.rest.routes(),
        ]

    def poll(self, now_us: int) -> list[Frame]:
        return self.feed.poll(now_us)

    def ground_truth(self) -> list[Trade]:
        """Every trade the feed has produced so far (what REST knows), in time order."""
        truth = getattr(self.feed, "ground_truth", None)
        return list(truth()) if callable(truth) else []

    def encode(self, mode: Hashable, topic: str, payload: bytes) -> bytes:
        name = self._stream_bytes.get(topic)
        if name is None:
            name = self._stream_bytes[topic] = topic.encode()
        return combined(name, payload)

    def shutdown_payload(self, now_ms: int) -> bytes | None:
        return server_shutdown_payload(now_ms)

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/stream"):
            is_combined, names = True, request.query.get("streams", "").split("/")
        else:
            is_combined, names = False, request.match_info.get("streams", "").split("/")
        streams = [n for n in names if n]
        if len(streams) > self.rules.max_streams:
            raise web.HTTPBadRequest(text=f"too many streams (max {self.rules.max_streams})")
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        session = ClientSession(ws, request, is_combined, self.rules, self.on_change, self.stalled)
        self.attach(session)
        session.subscribe(streams)
        await self.serve(session, session.run)
        return ws


async def run_simulator(
    symbols: list[str],
    trades_per_second: float,
    seed: int,
    faults: FaultPlan | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    recorded: list[str] | None = None,
) -> None:
    """Run a simulated exchange until cancelled (the CLI's `demo` and `simulate`)."""
    feed: Feed | SyntheticMarket
    if recorded:
        paths: list[str | Path] = [Path(p) for p in recorded]
        feed = RecordedFeed(paths)
    else:
        feed = SyntheticMarket(symbols, trades_per_second, seed)
    exchange = SimulatedExchange(feed, faults, host, port)
    await exchange.start()
    try:
        await asyncio.Event().wait()
    finally:
        await exchange.stop()
