"""One client's Finnhub WebSocket session.

- The token comes in the URL (`?token=`). A wrong or missing one gets
  `{"type":"error","msg":"Invalid API key"}` and a close (1008).
- `{"type":"subscribe","symbol":"AAPL"}` / `{"type":"unsubscribe","symbol":"AAPL"}`; no
  reply on success (as Finnhub). An unknown ticker is accepted and simply never trades.
  Past `max_symbols` a subscribe is refused with an error frame; a message that is not JSON
  or not one of these gets an error frame too. The connection stays open.
- Authenticated clients get `{"type":"ping"}` keepalives.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import msgspec
from aiohttp import WSMsgType, web

from marketpipe.simulator.finnhub.feed import PING_TOPIC, topic

if TYPE_CHECKING:
    from marketpipe.simulator.finnhub.front import FinnhubFront

_decoder = msgspec.json.Decoder(dict[str, object])


def error_frame(msg: str) -> bytes:
    return msgspec.json.encode({"type": "error", "msg": msg})


class FinnhubSession:
    mode = None  # every client gets the raw messages

    def __init__(
        self, front: FinnhubFront, ws: web.WebSocketResponse, request: web.Request
    ) -> None:
        self.front = front
        self.ws = ws
        self.request = request
        self.closed = False
        self.tickers: set[str] = set()

    @property
    def peer(self) -> str:
        return str(self.request.remote)

    async def run(self) -> None:
        if self.request.query.get("token") != self.front.token:
            self.front.rejected += 1
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_str(error_frame("Invalid API key").decode())
            await self.close(1008, b"invalid api key")
            return
        self.front.on_change(self, {PING_TOPIC}, set())
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    self._handle(msg.data)
                elif msg.type == WSMsgType.PING and not self.front.stalled():
                    await self.ws.pong(msg.data)
        finally:
            self.closed = True

    async def close(self, code: int, message: bytes) -> None:
        self.closed = True
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.close(code=code, message=message)

    def abort(self) -> None:
        self.closed = True
        transport = self.request.transport
        if transport is not None:
            transport.close()

    def _handle(self, text: str) -> None:
        try:
            body = _decoder.decode(text)
        except msgspec.DecodeError:
            self.front.send(self, error_frame("Invalid message"))
            return
        kind, ticker = body.get("type"), body.get("symbol")
        if kind not in ("subscribe", "unsubscribe") or not isinstance(ticker, str) or not ticker:
            self.front.send(self, error_frame("Invalid message"))
            return
        if kind == "unsubscribe":
            if ticker in self.tickers:
                self.tickers.discard(ticker)
                self.front.on_change(self, set(), {topic(ticker)})
            return
        if ticker in self.tickers:
            return
        if len(self.tickers) >= self.front.max_symbols:
            self.front.send(self, error_frame("Subscribing to too many symbols"))
            return
        self.tickers.add(ticker)
        self.front.on_change(self, {topic(ticker)}, set())
