"""One supervised WebSocket feed: connect → subscribe → read → reconnect, forever.

- Reconnects after any failure with capped exponential backoff and jitter. The backoff resets
  once a connection has delivered a frame, so a server that accepts and then hangs up at once
  is not hammered.
- A silence watchdog: no frame for `silence_timeout_s` means the connection is dead even if
  TCP has not noticed; we reconnect.
- Planned rotation before the exchange's 24 h cut, and a reconnect when the handler reports
  that the server is about to shut down: both open the new connection *before* closing the old
  one, so frames keep flowing throughout.
- Pings from the server are answered by `websockets` itself (it always replies to a ping); we
  send no pings of our own, since Binance counts them against the 5 messages/s budget.

Every connection's reader feeds one queue; a single consumer hands frames to the handler in
batches (whatever arrived since the last batch), keeping per-frame overhead low.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import websockets
from pydantic import BaseModel, ConfigDict, Field
from websockets.asyncio.client import ClientConnection

from marketpipe.observability.metrics import PRODUCER_ERRORS, RECONNECTS, WEBSOCKET_CONNECTIONS
from marketpipe.sources.ratelimit import MessagePacer, backoff_delay

log = logging.getLogger(__name__)

MAX_BATCH: Final = 1000
QUEUE_FRAMES: Final = 10_000
Frame = tuple[bytes, int]  # raw frame, local receive time in µs


class FeedHandler(Protocol):
    """What the supervisor needs from the code that understands the frames."""

    async def on_connected(self, name: str, overlapped: bool) -> None:
        """A new connection is subscribed. `overlapped`: the previous one was still open."""

    async def on_frames(self, name: str, frames: Sequence[Frame]) -> str | None:
        """Handle a batch; return a reconnect reason (e.g. "server_shutdown") or None."""


class ConnectionSettings(BaseModel):
    """How the supervisor keeps a venue's connections alive. Every venue's settings section
    extends this model, so each venue can tune its own (`MARKETPIPE_<VENUE>__SILENCE_TIMEOUT_S`)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key fails at start

    # Most venues cut a connection at 24 h; we rotate before that on our own terms.
    reconnect_after_s: float = Field(23 * 3600, gt=0)
    silence_timeout_s: float = Field(30.0, gt=0)
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    open_timeout_s: float = Field(10.0, gt=0)


@dataclass(frozen=True, slots=True)
class SupervisorTiming:
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    silence_timeout_s: float = 30.0
    reconnect_after_s: float = 23 * 3600.0
    open_timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: ConnectionSettings) -> "SupervisorTiming":
        return cls(
            backoff_initial_s=settings.backoff_initial_s,
            backoff_max_s=settings.backoff_max_s,
            silence_timeout_s=settings.silence_timeout_s,
            reconnect_after_s=settings.reconnect_after_s,
            open_timeout_s=settings.open_timeout_s,
        )


@dataclass(slots=True)
class SupervisorStatus:
    name: str
    url: str
    connected: bool = False
    connections_opened: int = 0
    connect_failures: int = 0
    frames: int = 0
    reconnects: dict[str, int] = field(default_factory=dict)
    # Why the last connect attempt failed, until one succeeds ("ConnectionRefusedError: ...").
    last_error: str | None = None


@dataclass(slots=True, eq=False)
class _Connection:
    ws: ClientConnection
    opened_at: float
    frames: int = 0
    reader: "asyncio.Task[str]" = field(init=False)


class ConnectionSupervisor:
    """Keeps one WebSocket subscription alive and feeds its frames to `handler`."""

    def __init__(
        self,
        name: str,
        url: str,
        handler: FeedHandler,
        timing: SupervisorTiming,
        *,
        subscribe_messages: Sequence[str] = (),
        pacer: MessagePacer | None = None,
        exchange: str = "binance",
    ) -> None:
        self.name = name
        self.url = url
        self._handler = handler
        self._timing = timing
        self._subscribe = list(subscribe_messages)
        self._pacer = pacer or MessagePacer(5.0)
        self._exchange = exchange
        self._queue: asyncio.Queue[tuple[_Connection, bytes, int]] = asyncio.Queue(QUEUE_FRAMES)
        self._current: _Connection | None = None
        self._open_conns: set[_Connection] = set()
        self._request: str | None = None
        self._requested = asyncio.Event()
        self._failures = 0
        self.status = SupervisorStatus(name=name, url=url)

    async def run(self) -> None:
        """Run until cancelled. Never raises for network trouble or bad frames."""
        consumer = asyncio.create_task(self._consume(), name=f"{self.name}-consume")
        try:
            await self._manage()
        finally:
            consumer.cancel()
            for conn in list(self._open_conns):  # mid-rotation there may be two
                await self._close(conn)
            with contextlib.suppress(asyncio.CancelledError):
                await consumer

    async def _manage(self) -> None:
        current = await self._open(overlapped=False)
        while True:
            reason = await self._wait_for_trouble(current)
            self._count_reconnect(reason)
            if reason in ("rotation", "server_shutdown") and current.reader.done() is False:
                # Make before break: the old connection keeps delivering until the new one is up.
                new = await self._open(overlapped=True)
                await self._close(current)
                current = new
            else:
                await self._close(current)
                current = await self._open(overlapped=False)

    async def _wait_for_trouble(self, conn: _Connection) -> str:
        """Return why `conn` has to be replaced."""
        self._requested.clear()
        self._request = None
        rotate_in = conn.opened_at + self._timing.reconnect_after_s - time.monotonic()
        requested = asyncio.create_task(self._requested.wait())
        rotation = asyncio.create_task(asyncio.sleep(max(0.0, rotate_in)))
        try:
            done, _ = await asyncio.wait(
                {conn.reader, requested, rotation}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            requested.cancel()
            rotation.cancel()
        if conn.reader in done:
            return conn.reader.result() if not conn.reader.cancelled() else "closed"
        if requested in done and self._request is not None:
            return self._request
        return "rotation"

    def _count_reconnect(self, reason: str) -> None:
        RECONNECTS.labels(self._exchange, reason).inc()
        self.status.reconnects[reason] = self.status.reconnects.get(reason, 0) + 1
        log.info("reconnecting %s (%s)", self.name, reason)

    async def _open(self, overlapped: bool) -> _Connection:
        """Connect and subscribe, retrying with backoff until it works."""
        while True:
            if self._failures:
                delay = backoff_delay(
                    self._failures - 1, self._timing.backoff_initial_s, self._timing.backoff_max_s
                )
                await asyncio.sleep(delay)
            try:
                conn = await self._connect_once()
            except (
                OSError,
                TimeoutError,
                websockets.InvalidHandshake,
                websockets.ConnectionClosed,
                websockets.InvalidURI,
            ) as exc:
                self._failures += 1
                self.status.connect_failures += 1
                self.status.last_error = f"{type(exc).__name__}: {exc}"
                PRODUCER_ERRORS.labels(self._exchange, "connect").inc()
                log.warning(
                    "connect %s failed (%s: %s); attempt %d",
                    self.name,
                    type(exc).__name__,
                    exc,
                    self._failures,
                )
                continue
            self._current = conn
            self.status.connected = True
            self.status.last_error = None
            self.status.connections_opened += 1
            # Until this connection delivers a frame, count it as a failure for backoff.
            self._failures += 1
            try:
                await self._handler.on_connected(self.name, overlapped)
            except Exception:
                log.exception("on_connected handler failed for %s", self.name)
            return conn

    async def _connect_once(self) -> _Connection:
        ws = await websockets.connect(
            self.url,
            open_timeout=self._timing.open_timeout_s,
            ping_interval=None,
            close_timeout=1.0,
            max_size=2**22,
            compression=None,
        )
        conn = _Connection(ws=ws, opened_at=time.monotonic())
        self._open_conns.add(conn)
        WEBSOCKET_CONNECTIONS.labels(self._exchange).inc()
        conn.reader = asyncio.create_task(self._read(conn), name=f"{self.name}-read")
        try:
            for message in self._subscribe:
                await self._pacer.wait()
                await ws.send(message)
        except websockets.ConnectionClosed:
            await self._close(conn)
            raise
        return conn

    async def _read(self, conn: _Connection) -> str:
        """Copy frames into the queue; return why reading stopped."""
        ws, queue, silence = conn.ws, self._queue, self._timing.silence_timeout_s
        loop = asyncio.get_running_loop()
        last = loop.time()  # when the last frame arrived (or the read began)
        try:
            while True:
                # One deadline per silence period, not one per frame: arming an asyncio
                # timeout for each frame cost ~9 µs, most of the read path at 10k frames/s.
                # When it fires, a frame since re-arms it (recv is cancel-safe), so silence
                # still means `silence_timeout_s` without a frame.
                blocked: tuple[_Connection, bytes, int] | None = None
                try:
                    async with asyncio.timeout_at(last + silence):
                        while blocked is None:
                            raw = await ws.recv(decode=False)
                            last = loop.time()
                            item = (conn, raw, time.time_ns() // 1000)
                            if queue.full():
                                blocked = item
                            else:
                                queue.put_nowait(item)
                except TimeoutError:
                    if loop.time() - last < silence:
                        continue
                    log.warning("%s silent for %.1f s", self.name, silence)
                    return "silence"
                # A full queue waits outside the deadline, as before: the consumer's pace is
                # not the server's silence.
                assert blocked is not None
                await queue.put(blocked)
                last = loop.time()
        except websockets.ConnectionClosed as exc:
            log.info("%s closed by peer: %s", self.name, exc)
            return "closed"

    async def _close(self, conn: _Connection) -> None:
        if not conn.reader.done():
            conn.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await conn.reader
        with contextlib.suppress(Exception):
            await conn.ws.close()
        if conn not in self._open_conns:
            return
        self._open_conns.discard(conn)
        if self._current is conn:
            self._current = None
            self.status.connected = False
        WEBSOCKET_CONNECTIONS.labels(self._exchange).dec()

    async def _consume(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            # Hand over per connection, so a shutdown notice is attributed to the right one.
            start = 0
            for i in range(1, len(batch) + 1):
                if i == len(batch) or batch[i][0] is not batch[start][0]:
                    await self._deliver(
                        batch[start][0], [(raw, us) for _, raw, us in batch[start:i]]
                    )
                    start = i

    async def _deliver(self, conn: _Connection, frames: list[Frame]) -> None:
        conn.frames += len(frames)
        self.status.frames += len(frames)
        if conn is self._current:
            self._failures = 0  # it works: the next failure starts backoff from the bottom
        try:
            reason = await self._handler.on_frames(self.name, frames)
        except Exception:
            PRODUCER_ERRORS.labels(self._exchange, "handler").inc()
            log.exception("frame handler failed on %s; %d frames lost", self.name, len(frames))
            return
        if reason is not None and conn is self._current and not self._requested.is_set():
            self._request = reason
            self._requested.set()
