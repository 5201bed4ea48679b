"""One client's WebSocket session, with Binance's stream protocol and connection rules.

Rules enforced as the real server does: more than 5 incoming messages a second (pings and
pongs included) closes the connection; at most 1024 streams; a ping every 20 s, and no pong
within a minute closes it. Method replies are `{"result": ..., "id": ...}`; bad requests get
`{"error": {"code": ..., "msg": ...}, "id": ...}`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)

_decoder = msgspec.json.Decoder(dict[str, object])
_encoder = msgspec.json.Encoder()
_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")


@dataclass(frozen=True, slots=True)
class StreamRules:
    ping_interval_s: float = 20.0
    pong_timeout_s: float = 60.0
    max_messages_per_s: int = 5
    max_streams: int = 1024
    max_connection_age_s: float | None = None  # Binance: 24 h


class ClientSession:
    """A connected client: its streams, its framing (raw or combined) and its limits."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        combined: bool,
        rules: StreamRules,
        on_change: Callable[[ClientSession, set[str], set[str]], None],
        is_stalled: Callable[[], bool],
    ) -> None:
        self.ws = ws
        self.request = request
        self.combined = combined
        self.rules = rules
        self.streams: set[str] = set()
        self._on_change = on_change
        self._is_stalled = is_stalled
        self._recent: deque[float] = deque()
        self._last_pong = time.monotonic()
        self.opened = time.monotonic()
        self.closed = False

    # -- subscriptions --------------------------------------------------------------------------

    def subscribe(self, streams: list[str]) -> str | None:
        """Add streams; an error message if that would pass the limit."""
        added = {s for s in streams if s not in self.streams}
        if len(self.streams) + len(added) > self.rules.max_streams:
            return f"Invalid request: too many streams (max {self.rules.max_streams})"
        self.streams |= added
        self._on_change(self, added, set())
        return None

    def unsubscribe(self, streams: list[str]) -> None:
        removed = {s for s in streams if s in self.streams}
        self.streams -= removed
        self._on_change(self, set(), removed)

    # -- the read loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Read client messages until the connection ends."""
        keeper = asyncio.create_task(self._keepalive())
        try:
            async for msg in self.ws:
                if self._over_rate():
                    log.info(
                        "closing %s: more than %d messages/s",
                        self.peer,
                        self.rules.max_messages_per_s,
                    )
                    await self.close(1008, b"Too many requests")
                    break
                if msg.type == WSMsgType.TEXT:
                    await self._handle_text(msg.data)
                elif msg.type == WSMsgType.PING:
                    if not self._is_stalled():
                        await self.ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    self._last_pong = time.monotonic()
                elif msg.type in (WSMsgType.BINARY,):
                    await self.reply_error(None, 3, "Invalid JSON: binary frames are not supported")
        finally:
            keeper.cancel()
            self.closed = True
            self.unsubscribe(list(self.streams))

    @property
    def mode(self) -> str | None:
        """How the front presents frames to us: wrapped for combined streams, else raw."""
        return "combined" if self.combined else None

    @property
    def peer(self) -> str:
        return str(self.request.remote)

    def _over_rate(self) -> bool:
        now = time.monotonic()
        self._recent.append(now)
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()
        return len(self._recent) > self.rules.max_messages_per_s

    async def _keepalive(self) -> None:
        rules = self.rules
        tick = min(rules.ping_interval_s, 1.0)
        last_ping = time.monotonic()
        while not self.ws.closed:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if (
                rules.max_connection_age_s is not None
                and now - self.opened > rules.max_connection_age_s
            ):
                await self.close(1000, b"connection age limit")
                return
            if now - self._last_pong > rules.pong_timeout_s:
                log.info("closing %s: no pong in %.0f s", self.peer, rules.pong_timeout_s)
                await self.close(1008, b"pong timeout")
                return
            if now - last_ping >= rules.ping_interval_s and not self._is_stalled():
                last_ping = now
                try:
                    await self.ws.ping(str(int(time.time() * 1000)).encode())
                except ConnectionError:
                    return

    async def close(self, code: int, message: bytes) -> None:
        self.closed = True
        if not self.ws.closed:
            await self.ws.close(code=code, message=message)

    def abort(self) -> None:
        """Drop the TCP connection without a close handshake."""
        self.closed = True
        transport = self.request.transport
        if transport is not None:
            transport.close()

    # -- methods ----------------------------------------------------------------------------------

    async def reply(self, body: dict[str, object]) -> None:
        if not self.ws.closed:
            await self.ws.send_frame(_encoder.encode(body), WSMsgType.TEXT)

    async def reply_error(self, request_id: object, code: int, msg: str) -> None:
        await self.reply({"error": {"code": code, "msg": msg}, "id": request_id})

    async def _handle_text(self, text: str) -> None:
        try:
            body = _decoder.decode(text)
        except msgspec.DecodeError as exc:
            await self.reply_error(None, 3, f"Invalid JSON: {exc}")
            return
        request_id = body.get("id")
        if request_id is not None and (
            not isinstance(request_id, int | str) or isinstance(request_id, bool)
        ):
            await self.reply_error(
                None, 2, "Invalid request: request ID must be an unsigned integer"
            )
            return
        method = body.get("method")
        if method is None:
            await self.reply_error(request_id, 2, "Invalid request: missing field `method`")
            return
        if method not in _METHODS:
            await self.reply_error(
                request_id,
                2,
                f"Invalid request: unknown variant `{method}`, expected one of "
                + ", ".join(f"`{m}`" for m in _METHODS),
            )
            return
        params = body.get("params", [])
        if not isinstance(params, list):
            await self.reply_error(request_id, 2, "Invalid request: params must be an array")
            return
        await self._dispatch(str(method), params, request_id)

    async def _dispatch(self, method: str, params: list[object], request_id: object) -> None:
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not all(isinstance(p, str) and "@" in p for p in params):
                await self.reply_error(request_id, 2, "Invalid request: invalid stream name")
                return
            names = [str(p) for p in params]
            if method == "SUBSCRIBE":
                error = self.subscribe(names)
                if error is not None:
                    await self.reply_error(request_id, 2, error)
                    return
            else:
                self.unsubscribe(names)
            await self.reply({"result": None, "id": request_id})
        elif method == "LIST_SUBSCRIPTIONS":
            await self.reply({"result": sorted(self.streams), "id": request_id})
        elif method == "SET_PROPERTY":
            if len(params) != 2 or params[0] != "combined" or not isinstance(params[1], bool):
                await self.reply_error(request_id, 1, "Invalid value type: expected Boolean")
                return
            self.combined = params[1]
            await self.reply({"result": None, "id": request_id})
        else:  # GET_PROPERTY
            if params != ["combined"]:
                await self.reply_error(request_id, 0, "Unknown property")
                return
            await self.reply({"result": self.combined, "id": request_id})
