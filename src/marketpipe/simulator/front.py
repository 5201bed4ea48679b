"""A venue front: what every simulated venue shares, whatever its protocol.

One aiohttp server per front. A pump task polls the front's frames every few milliseconds,
applies the fault plan (drop, duplicate, reorder, malformed, disconnect, stall, and the
venue's server-shutdown notice where it has one) and hands each subscribed client its frames;
a writer task per client sends them, so a slow client never stalls the others. Frames are
encoded once and shared by every subscriber; a venue that presents one frame in several ways
(Binance's raw vs combined streams) encodes it once per way.

A venue's front adds only its own protocol: its routes (the WebSocket handshake and
subscribe messages, REST), its frames, and how a frame looks to a client of a given mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Protocol

from aiohttp import WSMsgType, web

from marketpipe.model.records import Trade
from marketpipe.simulator.faults import FaultInjector, FaultPlan
from marketpipe.simulator.feed import Frame

log = logging.getLogger(__name__)

VERBATIM = "!"  # topic prefix of a garbage frame: sent as is to the topic's subscribers
Batch = list[tuple[bytes, tuple[str, int] | None]]


class FrontClient(Protocol):
    """One connected WebSocket client, as the shared machinery sees it."""

    ws: web.WebSocketResponse
    closed: bool

    @property
    def mode(self) -> Hashable:
        """How this client wants frames presented; None means the raw payload."""
        ...

    @property
    def peer(self) -> str: ...

    def abort(self) -> None: ...

    async def close(self, code: int, message: bytes) -> None: ...


class VenueFront(ABC):
    """The shared machinery; subclasses speak one venue's protocol on it."""

    venue = "venue"  # the venue's lowercase name (`binance`), as the records spell it
    ws_path = ""  # appended to ws://host:port for `ws_url` (Kraken: `/v2`)

    def __init__(
        self,
        faults: FaultPlan | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tick_s: float = 0.002,
        record_send_times: bool = False,
        max_send_times: int = 5_000_000,
        max_queued_batches: int = 10_000,
    ) -> None:
        self.faults = faults or FaultPlan()
        self.injector = FaultInjector(self.faults)
        self.host, self._port = host, port
        self.tick_s = tick_s
        self.record_send_times = record_send_times
        self.max_send_times = max_send_times
        self.max_queued_batches = max_queued_batches
        self.sent_ns: dict[tuple[str, int], int] = {}
        self.frames_sent = 0
        self._clients: dict[FrontClient, asyncio.Queue[Batch]] = {}
        self._subscribers: dict[str, set[FrontClient]] = {}
        self._held: Frame | None = None
        self._backlog: list[Frame] = []
        self._stalled_until = 0.0
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- what a venue provides ---------------------------------------------------------------------

    @abstractmethod
    def routes(self) -> list[web.RouteDef]:
        """The venue's WebSocket and REST routes."""

    @abstractmethod
    def poll(self, now_us: int) -> list[Frame]:
        """Frames due at `now_us` (wall clock, µs), in send order."""

    @abstractmethod
    def ground_truth(self) -> list[Trade]:
        """Every trade produced so far (what REST knows), in time order."""

    def encode(self, mode: Hashable, topic: str, payload: bytes) -> bytes:
        """`payload` of `topic` as a client of `mode` receives it (default: unchanged)."""
        return payload

    def shutdown_payload(self, now_ms: int) -> bytes | None:
        """The notice a venue sends before a maintenance close; None: it has none."""
        return None

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.add_routes(self.routes())
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port)
        try:
            await site.start()
        except BaseException:  # e.g. the port is taken: leave nothing half-started
            await self._runner.cleanup()
            self._runner = None
            raise
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self._port = int(sockets[0].getsockname()[1])
        self._tasks = [asyncio.create_task(self._pump(), name=f"{type(self).__name__}-pump")]
        log.info("simulated %s on %s (ws) and %s (rest)", self.venue, self.ws_url, self.rest_url)

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

    @property
    def port(self) -> int:
        return self._port

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self._port}{self.ws_path}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def client_count(self) -> int:
        return len(self._clients)

    @property
    def fault_counts(self) -> dict[str, int]:
        return dict(self.injector.counts)

    def stalled(self) -> bool:
        return time.monotonic() < self._stalled_until

    async def rest_fault(self) -> int | None:
        """The fault plan's part in a REST request: its delay, then a forced status (429 or
        418) to answer with instead, or None. A venue maps the status to its own answer."""
        plan = self.injector.plan  # tests swap it to switch REST faults off mid-run
        if plan.rest_delay_s > 0:
            await asyncio.sleep(plan.rest_delay_s)
        return self.injector.rest_status()

    # -- clients and subscriptions -----------------------------------------------------------------

    async def serve(self, client: FrontClient, run: Callable[[], Awaitable[None]]) -> None:
        """Register `client`, give it a writer, and run its read loop `run` to the end."""
        queue = self._clients.setdefault(client, asyncio.Queue())
        writer = asyncio.create_task(self._writer(client, queue))
        try:
            await run()
        finally:
            writer.cancel()
            self._clients.pop(client, None)
            self.on_change(client, set(), {t for t, s in self._subscribers.items() if client in s})

    def attach(self, client: FrontClient) -> None:
        """Register `client` before its first subscription (serve would do it too)."""
        self._clients.setdefault(client, asyncio.Queue())

    def send(self, client: FrontClient, payload: bytes) -> None:
        """Queue a reply behind the frames already queued for `client` (keeps their order)."""
        queue = self._clients.get(client)
        if queue is not None and not client.closed:
            queue.put_nowait([(payload, None)])

    def on_change(self, client: FrontClient, added: set[str], removed: set[str]) -> None:
        for topic in added:
            self._subscribers.setdefault(topic, set()).add(client)
        for topic in removed:
            subs = self._subscribers.get(topic)
            if subs is not None:
                subs.discard(client)
                if not subs:
                    del self._subscribers[topic]

    def subscribers(self, topic: str) -> set[FrontClient]:
        return self._subscribers.get(topic, set())

    async def _writer(self, client: FrontClient, queue: asyncio.Queue[Batch]) -> None:
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
                frames = self._apply_faults(self.poll(time.time_ns() // 1000))
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
                out.append((VERBATIM + frame[0], garbage, None))
            if self._held is not None and frame[2] is not None:
                out.append(self._held)  # the held frame goes right after its successor
                self._held = None
        return out

    def _dispatch(self, frames: Iterable[Frame]) -> None:
        if not self._clients:
            return
        batches: dict[FrontClient, Batch] = {}
        subscribers = self._subscribers
        for topic, payload, key in frames:
            verbatim = topic.startswith(VERBATIM)
            subs = subscribers.get(topic[1:] if verbatim else topic)
            if not subs:
                continue
            # One encoding per mode per frame; venues rarely have more than one mode in use.
            cached_mode: Hashable = None
            cached: bytes | None = None
            for client in subs:
                mode = client.mode
                if verbatim or mode is None:
                    batches.setdefault(client, []).append((payload, key))
                    continue
                if cached is None or mode != cached_mode:
                    cached_mode, cached = mode, self.encode(mode, topic, payload)
                batches.setdefault(client, []).append((cached, key))
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
        frame = self.shutdown_payload(time.time_ns() // 1_000_000)
        if frame is None:
            return  # this venue announces no maintenance closes
        self.injector.count("server_shutdown")
        clients = list(self._clients)
        for client in clients:
            queue = self._clients.get(client)
            if queue is not None:
                queue.put_nowait([(frame, None)])
        await asyncio.sleep(self.faults.server_shutdown_grace_s)
        for client in clients:
            await client.close(1001, b"server shutdown")
