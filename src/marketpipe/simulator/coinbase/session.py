"""One client's ws-feed session: Coinbase Exchange's subscribe protocol.

- `{"type": "subscribe", "product_ids": [...], "channels": [...]}`; a channel is a name
  (for the top-level products) or `{"name": ..., "product_ids": [...]}`. `unsubscribe` is
  the same shape. The answer is a `subscriptions` message listing everything subscribed.
- Subscribing `matches` sends the product's `last_match` at once, `ticker` its latest ticker.
- Bad requests get `{"type": "error", "message": ..., "reason": ...}`; the connection stays.
- A client that has not subscribed within `subscribe_timeout_s` (5 s) is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

import msgspec
from aiohttp import WSMsgType, web

from marketpipe.simulator.coinbase import frames
from marketpipe.simulator.coinbase.feed import topic

if TYPE_CHECKING:
    from marketpipe.simulator.coinbase.front import CoinbaseFront

CHANNELS = ("matches", "ticker", "heartbeat")
_decoder = msgspec.json.Decoder(dict[str, object])


class CoinbaseSession:
    mode = None  # every client gets the raw messages

    def __init__(
        self, front: CoinbaseFront, ws: web.WebSocketResponse, request: web.Request
    ) -> None:
        self.front = front
        self.ws = ws
        self.request = request
        self.closed = False
        self.channels: dict[str, list[str]] = {}
        self.opened = time.monotonic()

    @property
    def peer(self) -> str:
        return str(self.request.remote)

    async def run(self) -> None:
        deadline = asyncio.create_task(self._subscribe_deadline())
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    self._handle(msg.data)
                elif msg.type == WSMsgType.PING:
                    if not self.front.stalled():
                        await self.ws.pong(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self._error("Failed to subscribe", "binary messages are not supported")
        finally:
            deadline.cancel()
            self.closed = True

    async def _subscribe_deadline(self) -> None:
        await asyncio.sleep(self.front.subscribe_timeout_s)
        if not self.channels:
            await self.close(1008, b"subscribe timeout")

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

    # -- requests ----------------------------------------------------------------------------------

    def _error(self, message: str, reason: str) -> None:
        self.front.send(self, frames.error(message, reason))

    def _handle(self, text: str) -> None:
        try:
            body = _decoder.decode(text)
        except msgspec.DecodeError as exc:
            self._error("Failed to subscribe", f"malformed JSON: {exc}")
            return
        kind = body.get("type")
        if kind not in ("subscribe", "unsubscribe"):
            self._error("Failed to subscribe", "Type has to be either subscribe or unsubscribe")
            return
        wanted = self._wanted(body)
        if isinstance(wanted, str):
            self._error("Failed to subscribe", wanted)
            return
        if kind == "subscribe":
            self._subscribe(wanted)
        else:
            self._unsubscribe(wanted)

    def _wanted(self, body: dict[str, object]) -> list[tuple[str, str]] | str:
        """`(channel, product)` pairs the request names, or the reason it is invalid."""
        top = body.get("product_ids", [])
        channels = body.get("channels")
        if not isinstance(top, list) or not isinstance(channels, list) or not channels:
            return "channels must be a non-empty list and product_ids a list"
        pairs: list[tuple[str, str]] = []
        for channel in channels:
            if isinstance(channel, str):
                name, products = channel, top
            elif isinstance(channel, dict) and isinstance(channel.get("name"), str):
                name, products = str(channel["name"]), channel.get("product_ids", top)
            else:
                return f"{channel!r} is not a valid channel"
            if name not in CHANNELS:
                return f"{name} is not a valid channel"
            if not isinstance(products, list) or not products:
                return f"No product ids provided for {name}"
            for product in products:
                if not isinstance(product, str) or self.front.feed.spec(product) is None:
                    return f"{product} is not a valid product"
                pairs.append((name, product))
        return pairs

    def _subscribe(self, pairs: list[tuple[str, str]]) -> None:
        added = [
            (name, product) for name, product in pairs if product not in self.channels.get(name, [])
        ]
        for name, product in added:
            self.channels.setdefault(name, []).append(product)
        self.front.send(self, frames.subscriptions(self.channels))
        feed = self.front.feed
        for name, product in added:  # queued before any live frame of the new channel
            first = feed.last_match(product) if name == "matches" else None
            if name == "ticker":
                first = feed.ticker(product)
            if first is not None:
                self.front.send(self, first)
        self.front.on_change(self, {topic(n, p) for n, p in added}, set())

    def _unsubscribe(self, pairs: list[tuple[str, str]]) -> None:
        removed = set()
        for name, product in pairs:
            products = self.channels.get(name, [])
            if product in products:
                products.remove(product)
                removed.add(topic(name, product))
                if not products:
                    del self.channels[name]
        self.front.on_change(self, set(), removed)
        self.front.send(self, frames.subscriptions(self.channels))
