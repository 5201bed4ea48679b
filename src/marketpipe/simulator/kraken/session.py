"""One client's WebSocket v2 session: Kraken's method protocol.

- On connect the server sends a `status` update (system online, a connection id).
- `{"method": "subscribe", "params": {"channel": "trade"|"ticker", "symbol": [...],
  "snapshot": bool}, "req_id": n}`: one ack per symbol, `{"method": "subscribe",
  "result": {...}, "success": true, "time_in": ..., "time_out": ..., "req_id": n}`, or
  `"success": false` with an `error` for an unknown pair or channel. A trade snapshot (the
  last 50 trades) is sent only when asked for; a ticker snapshot unless `snapshot` is false.
- `unsubscribe` mirrors it; `ping` answers `pong`. Once subscribed to anything, the client
  gets `{"channel": "heartbeat"}` every second.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from typing import TYPE_CHECKING

import msgspec
from aiohttp import WSMsgType, web

from marketpipe.simulator.kraken import frames
from marketpipe.simulator.kraken.feed import HEARTBEAT_TOPIC, topic

if TYPE_CHECKING:
    from marketpipe.simulator.kraken.front import KrakenFront

CHANNELS = ("trade", "ticker")
_decoder = msgspec.json.Decoder(dict[str, object])
_connection_ids = itertools.count(11_293_906_104_898_154_338 % (1 << 62))


def _now_us() -> int:
    return time.time_ns() // 1000


class KrakenSession:
    mode = None  # every client gets the raw messages

    def __init__(self, front: KrakenFront, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.front = front
        self.ws = ws
        self.request = request
        self.closed = False
        self.topics: set[str] = set()
        self.connection_id = next(_connection_ids)

    @property
    def peer(self) -> str:
        return str(self.request.remote)

    async def run(self) -> None:
        self.front.send(self, frames.status(self.connection_id))
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

    # -- methods -----------------------------------------------------------------------------------

    def _reply(
        self,
        method: str,
        req_id: object,
        time_in: int,
        result: dict[str, object] | None = None,
        error: str | None = None,
    ) -> None:
        reply = frames.method_reply(method, req_id, time_in, _now_us(), result, error)
        self.front.send(self, reply)

    def _handle(self, text: str) -> None:
        time_in = _now_us()
        try:
            body = _decoder.decode(text)
        except msgspec.DecodeError:
            self._reply("", None, time_in, error="Malformed request")
            return
        method, req_id = body.get("method"), body.get("req_id")
        if method == "ping":
            self.front.send(self, frames.method_reply("pong", req_id, time_in, _now_us()))
            return
        if method not in ("subscribe", "unsubscribe"):
            self._reply(str(method or ""), req_id, time_in, error="Method not found")
            return
        params = body.get("params")
        if not isinstance(params, dict):
            self._reply(str(method), req_id, time_in, error="Missing params")
            return
        channel = params.get("channel")
        if channel not in CHANNELS:
            self._reply(str(method), req_id, time_in, error=f"Channel {channel} not found")
            return
        symbols = params.get("symbol")
        if not isinstance(symbols, list) or not symbols:
            self._reply(str(method), req_id, time_in, error="Missing symbol")
            return
        snapshot = params.get("snapshot", channel == "ticker")
        for symbol in symbols:
            if not isinstance(symbol, str) or self.front.feed.spec(symbol) is None:
                self._reply(
                    str(method), req_id, time_in, error=f"Currency pair not supported {symbol}"
                )
                continue
            if method == "subscribe":
                self._subscribe(str(channel), symbol, bool(snapshot), params, req_id, time_in)
            else:
                self._unsubscribe(str(channel), symbol, req_id, time_in)

    def _subscribe(
        self,
        channel: str,
        symbol: str,
        snapshot: bool,
        params: dict[str, object],
        req_id: object,
        time_in: int,
    ) -> None:
        name = topic(channel, symbol)
        if name in self.topics:
            self._reply("subscribe", req_id, time_in, error="Already subscribed")
            return
        result: dict[str, object] = {"channel": channel}
        if channel == "ticker":
            result["event_trigger"] = params.get("event_trigger", "trades")
        result["snapshot"] = snapshot
        result["symbol"] = symbol
        self._reply("subscribe", req_id, time_in, result=result)
        feed = self.front.feed
        if snapshot:
            first = (
                feed.trade_snapshot(symbol) if channel == "trade" else feed.ticker_snapshot(symbol)
            )
            if first is not None:
                self.front.send(self, first)
        added = {name}
        if not self.topics:
            added.add(HEARTBEAT_TOPIC)
        self.topics |= added
        self.front.on_change(self, added, set())

    def _unsubscribe(self, channel: str, symbol: str, req_id: object, time_in: int) -> None:
        name = topic(channel, symbol)
        if name not in self.topics:
            self._reply("unsubscribe", req_id, time_in, error="Subscription Not Found")
            return
        self.topics.discard(name)
        self.front.on_change(self, set(), {name})
        self._reply("unsubscribe", req_id, time_in, result={"channel": channel, "symbol": symbol})
