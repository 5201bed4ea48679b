"""ConnectionSupervisor's read loop: the silence watchdog counts from the last frame, and a
full queue (a slow consumer) is not mistaken for a silent server."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import pytest
from websockets.asyncio.server import ServerConnection, serve

from marketpipe.sources.supervisor import ConnectionSupervisor, Frame, SupervisorTiming
from tests.sources.fake_binance import wait_until

pytestmark = pytest.mark.integration

SILENCE_S = 0.35
Script = Callable[[ServerConnection], Awaitable[None]]


class Handler:
    def __init__(self, slow_first_batch_s: float = 0.0) -> None:
        self.frames: list[bytes] = []
        self.connected_at: list[float] = []
        self.frame_times: list[float] = []  # when each frame was handed over
        self._slow = slow_first_batch_s

    async def on_connected(self, name: str, overlapped: bool) -> None:
        self.connected_at.append(time.monotonic())

    async def on_frames(self, name: str, frames: Sequence[Frame]) -> str | None:
        self.frames.extend(raw for raw, _ in frames)
        self.frame_times.extend(time.monotonic() for _ in frames)
        if self._slow:
            await asyncio.sleep(self._slow)
            self._slow = 0.0
        return None


@asynccontextmanager
async def supervised(
    script: Script, handler: Handler, queue_size: int | None = None
) -> AsyncIterator[ConnectionSupervisor]:
    async def serve_one(ws: ServerConnection) -> None:
        await script(ws)
        await ws.wait_closed()  # then silent until the client goes

    async with serve(serve_one, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        timing = SupervisorTiming(backoff_initial_s=0.05, silence_timeout_s=SILENCE_S)
        supervisor = ConnectionSupervisor("test", f"ws://127.0.0.1:{port}", handler, timing)
        if queue_size is not None:
            supervisor._queue = asyncio.Queue(queue_size)
        task = asyncio.create_task(supervisor.run())
        try:
            yield supervisor
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def numbered(n: int) -> list[bytes]:
    return [f"frame-{i}".encode() for i in range(n)]


async def test_frames_closer_than_the_timeout_keep_a_connection_for_many_timeouts() -> None:
    async def every_100_ms(ws: ServerConnection) -> None:
        for raw in numbered(15):  # 1.5 s of frames: four times the silence timeout
            await ws.send(raw)
            await asyncio.sleep(0.1)

    handler = Handler()
    async with supervised(every_100_ms, handler) as supervisor:
        await asyncio.sleep(1.6)
        assert supervisor.status.reconnects.get("silence", 0) == 0
        assert supervisor.status.connections_opened == 1
    assert handler.frames == numbered(15)


async def test_silence_is_counted_from_the_last_frame() -> None:
    async def five_then_silent(ws: ServerConnection) -> None:
        for raw in numbered(5):
            await ws.send(raw)
            await asyncio.sleep(0.1)

    handler = Handler()
    async with supervised(five_then_silent, handler) as supervisor:
        await wait_until(lambda: len(handler.connected_at) == 2, within=3)
        assert supervisor.status.reconnects == {"silence": 1}
    silent_for = handler.connected_at[1] - handler.frame_times[4]  # the first connection's last
    # Not earlier than the timeout after the last frame; the slack is the reconnect itself.
    assert SILENCE_S <= silent_for < SILENCE_S + 0.3
    assert handler.frames[:5] == numbered(5)


async def test_a_full_queue_waiting_on_a_slow_consumer_is_not_silence() -> None:
    async def burst_then_steady(ws: ServerConnection) -> None:
        for raw in numbered(3):  # 0 is handed over, 1 fills the queue, 2 waits to be put
            await ws.send(raw)
        # The next frame comes after the consumer's stall but within the timeout of its end.
        await asyncio.sleep(2 * SILENCE_S + 0.15)
        for raw in [f"late-{i}".encode() for i in range(4)]:
            await ws.send(raw)
            await asyncio.sleep(0.2)

    # The consumer stalls twice the timeout on its first batch while a 1-frame queue is full.
    handler = Handler(slow_first_batch_s=2 * SILENCE_S)
    async with supervised(burst_then_steady, handler, queue_size=1) as supervisor:
        await wait_until(lambda: len(handler.frames) == 7, within=3)
        assert supervisor.status.reconnects.get("silence", 0) == 0
    assert handler.frames == numbered(3) + [f"late-{i}".encode() for i in range(4)]
