"""The simulated exchange: one aiohttp server speaking Binance spot's WS streams and REST.

A pump task polls the feed every few milliseconds, applies the fault plan and hands each
client its frames; a writer task per client sends them, so a slow client never stalls the
others. Frames are encoded once and shared by every subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from pathlib import Path

from aiohttp import WSMsgType, web

from marketpipe.model.records import Trade
from marketpipe.simulator.faults import FaultInjector, FaultPlan
from marketpipe.simulator.feed import Feed, Frame, SyntheticFeed
from marketpipe.simulator.market import SyntheticMarket
from marketpipe.simulator.recorded import RecordedFeed
from marketpipe.simulator.rest import RestApi, WeightLimiter
from marketpipe.simulator.streams import ClientSession, StreamRules
from marketpipe.simulator.wire import combined, server_shutdown_payload

log = logging.getLogger(__name__)

_VERBATIM = "!"  # stream-name prefix of a garbage frame: sent as is, never wrapped
Batch = list[tuple[bytes, tuple[str, int] | None]]


class SimulatedExchange:
    """Serve `feed` (a Feed, or a SyntheticMarket to wrap) as Binance spot on `host:port`."""

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
        self.feed: Feed = (
            SyntheticFeed(feed, history_per_symbol) if isinstance(feed, SyntheticMarket) else feed
        )
        self.faults = faults or FaultPlan()
        self.injector = FaultInjector(self.faults)
        self.host, self._port = host, port
        self.rules = rules or StreamRules()
        self.tick_s = tick_s
        self.record_send_times = record_send_times
        self.max_send_times = max_send_times
        self.max_queued_batches = max_queued_batches
        self.sent_ns: dict[tuple[str, int], int] = {}
        self.frames_sent = 0
        self.rest = RestApi(
            self.feed, self.injector, WeightLimiter(rest_weight_limit, rest_weight_window_s)
        )
        self._clients: dict[ClientSession, asyncio.Queue[Batch]] = {}
        self._subscribers: dict[str, set[ClientSession]] = {}
        self._stream_bytes: dict[str, bytes] = {}
        self._held: Frame | None = None
        self._backlog: list[Frame] = []
        self._stalled_until = 0.0
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.add_routes(
            [
                web.get("/ws", self._ws_handler),
                web.get("/ws/{streams:.*}", self._ws_handler),
                web.get("/stream", self._ws_handler),
                *self.rest.routes(),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self._port = int(sockets[0].getsockname()[1])
        self._tasks = [asyncio.create_task(self._pump(), name="simulator-pump")]
        log.info("simulated exchange on %s (ws) and %s (rest)", self.ws_url, self.rest_url)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for client in list(self._clients):
            await client.close(1001, b"server stopping")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimulatedExchange:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self._port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def client_count(self) -> int:
        return len(self._clients)

    @property
    def fault_counts(self) -> dict[str, int]:
        return dict(self.injector.counts)

    def ground_truth(self) -> list[Trade]:
        """Every trade the feed has produced so far (what REST knows), in time order."""
        truth = getattr(self.feed, "ground_truth", None)
        return list(truth()) if callable(truth) else []

    def stalled(self) -> bool:
        return time.monotonic() < self._stalled_until

    # -- WebSocket ---------------------------------------------------------------------------------

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
        session = ClientSession(ws, request, is_combined, self.rules, self._on_change, self.stalled)
        queue: asyncio.Queue[Batch] = asyncio.Queue()
        self._clients[session] = queue
        session.subscribe(streams)
        writer = asyncio.create_task(self._writer(session, queue))
        try:
            await session.run()
        finally:
            writer.cancel()
            self._clients.pop(session, None)
        return ws

    def _on_change(self, client: ClientSession, added: set[str], removed: set[str]) -> None:
        for stream in added:
            self._subscribers.setdefault(stream, set()).add(client)
        for stream in removed:
            subs = self._subscribers.get(stream)
            if subs is not None:
                subs.discard(client)
                if not subs:
                    del self._subscribers[stream]

    async def _writer(self, client: ClientSession, queue: asyncio.Queue[Batch]) -> None:
        sent = self.sent_ns
        ws = client.ws
        try:
            while True:
                batch = await queue.get()
                for payload, key in batch:
                    if ws.closed:
                        return
                    if (
                        key is not None
                        and self.record_send_times
                        and key not in sent
                        and len(sent) < self.max_send_times
                    ):
                        sent[key] = time.perf_counter_ns()
                    await ws.send_frame(payload, WSMsgType.TEXT)
                self.frames_sent += len(batch)
        except (ConnectionError, RuntimeError):
            client.abort()

    # -- the pump ----------------------------------------------------------------------------------

    async def _pump(self) -> None:
        plan = self.faults
        start = time.monotonic()
        next_disconnect = start + (plan.disconnect_every_s or 0.0)
        next_stall = start + (plan.stall_every_s or 0.0)
        next_shutdown = start + (plan.server_shutdown_every_s or 0.0)
        while True:
            now = time.monotonic()
            if plan.disconnect_every_s and now >= next_disconnect:
                next_disconnect = now + plan.disconnect_every_s
                self._disconnect_all()
            if plan.stall_every_s and now >= next_stall:
                next_stall = now + plan.stall_every_s + plan.stall_s
                self._stalled_until = now + plan.stall_s
                self.injector.count("stall")
            if plan.server_shutdown_every_s and now >= next_shutdown:
                next_shutdown = now + plan.server_shutdown_every_s
                self._tasks.append(asyncio.create_task(self._server_shutdown()))
            try:
                frames = self._apply_faults(self.feed.poll(time.time_ns() // 1000))
                if self.stalled():
                    self._backlog.extend(frames)
                else:
                    if self._backlog:
                        frames, self._backlog = self._backlog + frames, []
                    self._dispatch(frames)
            except Exception:  # a bad frame must not kill the exchange
                log.exception("simulator pump failed to dispatch a tick")
            await asyncio.sleep(self.tick_s)

    def _apply_faults(self, frames: list[Frame]) -> list[Frame]:
        if not self.faults.any and self._held is None:
            return frames
        inj = self.injector
        out: list[Frame] = []
        for frame in frames:
            if frame[2] is not None:
                if inj.drop():
                    continue
                if self._held is None and inj.reorder():
                    self._held = frame
                    continue
            out.append(frame)
            if frame[2] is not None and inj.duplicate():
                out.append(frame)
            garbage = inj.malformed(frame[1])
            if garbage is not None:
                out.append((_VERBATIM + frame[0], garbage, None))
            if self._held is not None and frame[2] is not None:
                out.append(self._held)  # the held frame goes right after its successor
                self._held = None
        return out

    def _dispatch(self, frames: Iterable[Frame]) -> None:
        if not self._clients:
            return
        batches: dict[ClientSession, Batch] = {}
        subscribers = self._subscribers
        for stream, payload, key in frames:
            verbatim = stream.startswith(_VERBATIM)
            subs = subscribers.get(stream[1:] if verbatim else stream)
            if not subs:
                continue
            wrapped: bytes | None = None
            for client in subs:
                if client.combined and not verbatim:
                    if wrapped is None:
                        name = self._stream_bytes.get(stream)
                        if name is None:
                            name = self._stream_bytes[stream] = stream.encode()
                        wrapped = combined(name, payload)
                    batches.setdefault(client, []).append((wrapped, key))
                else:
                    batches.setdefault(client, []).append((payload, key))
        for client, batch in batches.items():
            queue = self._clients.get(client)
            if queue is None or client.closed:
                continue
            if queue.qsize() >= self.max_queued_batches:
                log.warning("dropping slow client %s", client.peer)
                client.abort()
                continue
            queue.put_nowait(batch)

    def _disconnect_all(self) -> None:
        self.injector.count("disconnect")
        for client in list(self._clients):
            client.abort()

    async def _server_shutdown(self) -> None:
        self.injector.count("server_shutdown")
        clients = list(self._clients)
        frame = server_shutdown_payload(time.time_ns() // 1_000_000)
        for client in clients:
            queue = self._clients.get(client)
            if queue is not None:
                queue.put_nowait([(frame, None)])
        await asyncio.sleep(self.faults.server_shutdown_grace_s)
        for client in clients:
            await client.close(1001, b"server shutdown")


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
