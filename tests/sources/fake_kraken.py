"""A small scriptable stand-in for Kraken spot: WebSocket v2 (`/v2`) and REST `Trades`.

Each pair has a trade log; `trade()` appends to it and, unless told otherwise, delivers the
new trades in ONE v2 `trade` frame (Kraken batches) to every connection subscribed to the
pair. REST `/0/public/Trades` serves the same log the way Kraken does: `since` is a time in
ns (rows strictly after it), `count` caps the page, rows are `[price, volume, time, side,
ordertype, misc, trade_id]`, the result is keyed by the pair's internal name (`XXBTZUSD`),
and `last` is the ns time of the last row. Failures are Kraken's: HTTP 200 with an `error`
array, or an HTTP status.
"""

import contextlib
import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

# altname -> (internal name, v2 symbol)
PAIRS = {"XBTUSD": ("XXBTZUSD", "BTC/USD"), "ETHUSD": ("XETHZUSD", "ETH/USD")}


@dataclass
class Row:
    trade_id: int
    price: str
    qty: str
    time_us: int
    side: str  # "b" / "s", the taker's

    @property
    def time_ns(self) -> int:
        return self.time_us * 1000

    def rest(self) -> list[Any]:
        seconds = Decimal(self.time_us) / Decimal(1_000_000)
        return [self.price, self.qty, seconds, self.side, "l", "", self.trade_id]

    def v2(self, symbol: str) -> dict[str, Any]:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.time_us // 1_000_000))
        return {
            "symbol": symbol,
            "side": "buy" if self.side == "b" else "sell",
            "price": float(self.price),
            "qty": float(self.qty),
            "ord_type": "limit",
            "trade_id": self.trade_id,
            "timestamp": f"{stamp}.{self.time_us % 1_000_000:06d}Z",
        }


@dataclass(eq=False)
class FakeConnection:
    ws: web.WebSocketResponse
    channels: dict[str, set[str]] = field(default_factory=lambda: {"trade": set(), "ticker": set()})
    received: list[dict[str, Any]] = field(default_factory=list)


# Kraken writes trade times as JSON numbers with µs digits: encode Decimals as exact numbers.
_encoder = msgspec.json.Encoder(decimal_format="number")


class FakeKraken:
    def __init__(self, start_id: int = 5000, start_us: int = 1_700_000_000_000_000) -> None:
        self.log: dict[str, list[Row]] = {altname: [] for altname in PAIRS}
        self.next_id = dict.fromkeys(PAIRS, start_id)
        self.clock_us = start_us  # trade times advance 1 ms per trade unless told otherwise
        self.connections: list[FakeConnection] = []
        self.connections_opened = 0
        # Popped one per REST call: ("status", 503), ("retry_after", 1.5) (a 429) or
        # ("error", ["EGeneral:Too many requests"]) (Kraken's HTTP 200 with an error array)
        self.rest_faults: list[tuple[str, Any]] = []
        self.rest_calls: list[dict[str, str]] = []
        self.refuse_pairs: set[str] = set()  # v2 symbols whose subscription fails
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v2"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> "FakeKraken":
        app = web.Application()
        app.router.add_get("/v2", self._ws)
        app.router.add_get("/0/public/Trades", self._trades)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        await self.drop_all()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- scripting ---------------------------------------------------------------------

    @property
    def open_connections(self) -> list[FakeConnection]:
        return [c for c in self.connections if not c.ws.closed]

    def add(self, altname: str = "XBTUSD", n: int = 1, *, same_time: bool = False) -> list[Row]:
        """Append `n` trades to the log (delivered nowhere); `same_time`: one timestamp."""
        rows = []
        for k in range(n):
            tid = self.next_id[altname]
            self.next_id[altname] = tid + 1
            if not (same_time and k > 0):
                self.clock_us += 1000
            side = "b" if tid % 3 else "s"
            rows.append(Row(tid, f"{100 + tid % 7}.5", "0.25", self.clock_us, side))
        self.log[altname].extend(rows)
        return rows

    async def trade(
        self, altname: str = "XBTUSD", n: int = 1, *, deliver: bool = True, same_time: bool = False
    ) -> list[int]:
        rows = self.add(altname, n, same_time=same_time)
        if deliver:
            symbol = PAIRS[altname][1]
            frame = {"channel": "trade", "type": "update", "data": [r.v2(symbol) for r in rows]}
            await self.send(json.dumps(frame), channel="trade", symbol=symbol)
        return [r.trade_id for r in rows]

    async def quote(self, symbol: str = "BTC/USD") -> None:
        data = {"symbol": symbol, "bid": 99.5, "bid_qty": 1.0, "ask": 100.5, "ask_qty": 2.0}
        frame = {"channel": "ticker", "type": "update", "data": [data]}
        await self.send(json.dumps(frame), channel="ticker", symbol=symbol)

    async def send(self, text: str, channel: str | None = None, symbol: str | None = None) -> None:
        for conn in self.open_connections:
            if channel is None or symbol in conn.channels[channel]:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await conn.ws.send_str(text)

    async def drop_all(self) -> None:
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                await conn.ws.close()

    # -- handlers ------------------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = FakeConnection(ws)
        self.connections.append(conn)
        self.connections_opened += 1
        status = {"api_version": "v2", "connection_id": 1, "system": "online", "version": "2.0"}
        await ws.send_str(json.dumps({"channel": "status", "type": "update", "data": [status]}))
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            body = json.loads(msg.data)
            conn.received.append(body)
            if body.get("method") == "ping":
                await ws.send_str(json.dumps({"method": "pong", "req_id": body.get("req_id")}))
            elif body.get("method") == "subscribe":
                await self._subscribe(conn, body)
        return ws

    async def _subscribe(self, conn: FakeConnection, body: dict[str, Any]) -> None:
        params = body["params"]
        for symbol in params["symbol"]:
            ack: dict[str, Any] = {"method": "subscribe", "req_id": body.get("req_id")}
            if symbol in self.refuse_pairs:
                ack.update(success=False, error="Currency pair not supported", symbol=symbol)
            else:
                conn.channels[params["channel"]].add(symbol)
                result = {"channel": params["channel"], "symbol": symbol, "snapshot": False}
                ack.update(success=True, result=result)
            await conn.ws.send_str(json.dumps(ack))

    async def _trades(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        self.rest_calls.append(params)
        if self.rest_faults:
            kind, value = self.rest_faults.pop(0)
            if kind == "status":
                return web.Response(status=value, text="<html>busy</html>")
            if kind == "retry_after":  # a proxy's 429 with Retry-After (seconds)
                return web.Response(status=429, headers={"Retry-After": str(value)})
            return web.json_response({"error": value})
        altname = params.get("pair", "")
        if altname not in self.log:
            return web.json_response({"error": ["EQuery:Unknown asset pair"]})
        count = int(params.get("count", "1000"))
        rows = self.log[altname]
        if "since" in params:
            since = int(params["since"])
            page = [r for r in rows if r.time_ns > since][:count]
        else:
            page = rows[-count:]
        last = page[-1].time_ns if page else int(params.get("since", "0"))
        result = {PAIRS[altname][0]: [r.rest() for r in page], "last": str(last)}
        body = _encoder.encode({"error": [], "result": result})
        return web.Response(body=body, content_type="application/json")
