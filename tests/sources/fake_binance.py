"""A tiny scriptable stand-in for Binance spot (combined streams + REST) for connector tests.

Each symbol has a trade log; `trade()` appends to it and, unless told otherwise, delivers the
trade to every connection subscribed to `<sym>@trade`. REST `historicalTrades` serves from the
same log, so "trades the socket never delivered" can be back-filled exactly.
"""

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from marketpipe.model.records import DeadLetter, Quote, Trade
from marketpipe.sources.binance.connector import BinanceConnector
from marketpipe.sources.binance.settings import BinanceSettings


@dataclass(eq=False)
class FakeConnection:
    ws: web.WebSocketResponse
    streams: set[str]
    query_streams: list[str]
    received: list[str] = field(default_factory=list)


class FakeBinance:
    def __init__(self, symbols: dict[str, tuple[str, str]] | None = None, start_id: int = 1000):
        self.symbols = symbols or {"BTCUSDT": ("BTC", "USDT"), "ETHUSDT": ("ETH", "USDT")}
        self.log: dict[str, list[dict[str, Any]]] = {s: [] for s in self.symbols}
        self.next_id: dict[str, int] = dict.fromkeys(self.symbols, start_id)
        self.connections: list[FakeConnection] = []
        self.connections_opened = 0
        self.max_open = 0  # most connections open at once
        self.silent = False  # accept connections but never send them anything
        self.rest_faults: list[tuple[int, dict[str, str]]] = []  # (status, headers), popped
        self.rest_calls: list[tuple[str, dict[str, str], float]] = []
        self.exchange_info_ok = True
        self.used_weight = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> "FakeBinance":
        app = web.Application()
        app.router.add_get("/stream", self._ws)
        app.router.add_get("/api/v3/historicalTrades", self._historical)
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
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

    async def trade(self, native: str = "BTCUSDT", n: int = 1, deliver: bool = True) -> list[int]:
        ids = []
        for _ in range(n):
            tid = self.next_id[native]
            self.next_id[native] = tid + 1
            now_ms = int(time.time() * 1000)
            row = {
                "id": tid,
                "price": f"{100 + tid % 7}.5",
                "qty": "0.25",
                "time": now_ms,
                "isBuyerMaker": tid % 2 == 0,
            }
            self.log[native].append(row)
            ids.append(tid)
            if deliver:
                stream = f"{native.lower()}@trade"
                frame = {
                    "stream": stream,
                    "data": {
                        "e": "trade",
                        "E": now_ms,
                        "s": native,
                        "t": tid,
                        "p": row["price"],
                        "q": row["qty"],
                        "T": now_ms,
                        "m": row["isBuyerMaker"],
                        "M": True,
                    },
                }
                await self.send(json.dumps(frame), stream=stream)
        return ids

    async def quote(self, native: str = "BTCUSDT") -> None:
        stream = f"{native.lower()}@bookTicker"
        frame = {
            "stream": stream,
            "data": {"u": 1, "s": native, "b": "99.5", "B": "1.0", "a": "100.5", "A": "2.0"},
        }
        await self.send(json.dumps(frame), stream=stream)

    async def send(self, text: str, stream: str | None = None) -> None:
        for conn in self.open_connections:
            if stream is None or stream in conn.streams:
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
        query = [s for s in request.query.get("streams", "").split("/") if s]
        conn = FakeConnection(ws, set(query) if not self.silent else set(), query)
        self.connections.append(conn)
        self.connections_opened += 1
        self.max_open = max(self.max_open, len(self.open_connections))
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            conn.received.append(msg.data)
            body = json.loads(msg.data)
            if body.get("method") == "SUBSCRIBE":
                if not self.silent:
                    conn.streams.update(body["params"])
                await ws.send_str(json.dumps({"result": None, "id": body["id"]}))
        return ws

    def _fault(self) -> web.Response | None:
        if not self.rest_faults:
            return None
        status, headers = self.rest_faults.pop(0)
        body = json.dumps({"code": -1003, "msg": f"fault {status}"})
        return web.Response(
            status=status, text=body, headers=headers, content_type="application/json"
        )

    async def _historical(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        self.rest_calls.append(("historicalTrades", params, time.monotonic()))
        fault = self._fault()
        if fault is not None:
            return fault
        symbol = params["symbol"]
        if symbol not in self.log:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        limit = int(params.get("limit", "500"))
        rows = self.log[symbol]
        if "fromId" in params:
            from_id = int(params["fromId"])
            rows = [r for r in rows if r["id"] >= from_id][:limit]
        else:
            rows = rows[-limit:]
        self.used_weight += 25
        out = [dict(r, quoteQty="1.0", isBestMatch=True) for r in rows]
        return web.json_response(out, headers={"X-MBX-USED-WEIGHT-1M": str(self.used_weight)})

    async def _exchange_info(self, request: web.Request) -> web.Response:
        self.rest_calls.append(("exchangeInfo", dict(request.query), time.monotonic()))
        if not self.exchange_info_ok:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        symbols = [
            {"symbol": s, "baseAsset": b, "quoteAsset": q, "status": "TRADING"}
            for s, (b, q) in self.symbols.items()
        ]
        return web.json_response({"timezone": "UTC", "symbols": symbols})


async def wait_until(predicate: Any, within: float = 5.0, interval: float = 0.01) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(interval)


Record = Trade | Quote | DeadLetter


class Sink:
    """Collects what a connector emits, in order, batch by batch."""

    def __init__(self) -> None:
        self.batches: list[list[Record]] = []

    async def __call__(self, batch: list[Record]) -> None:
        self.batches.append(list(batch))

    @property
    def records(self) -> list[Record]:
        return [r for batch in self.batches for r in batch]

    def trades(self, symbol: str = "BTC-USDT") -> list[Trade]:
        return [r for r in self.records if isinstance(r, Trade) and r.symbol == symbol]

    def trade_ids(self, symbol: str = "BTC-USDT") -> list[int]:
        return [t.trade_id for t in self.trades(symbol)]

    @property
    def dead_letters(self) -> list[DeadLetter]:
        return [r for r in self.records if isinstance(r, DeadLetter)]

    @property
    def quotes(self) -> list[Quote]:
        return [r for r in self.records if isinstance(r, Quote)]


def fast_settings(fake: FakeBinance, **overrides: object) -> BinanceSettings:
    values: dict[str, object] = {
        "ws_url": fake.ws_url,
        "rest_url": fake.rest_url,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "silence_timeout_s": 5.0,
        "rest_timeout_s": 2.0,
    }
    values.update(overrides)
    return BinanceSettings.model_validate(values)


@contextlib.asynccontextmanager
async def running(connector: BinanceConnector) -> AsyncIterator[BinanceConnector]:
    """Run the connector in the background for the duration of the block."""
    task = asyncio.create_task(connector.run())
    try:
        yield connector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert task.cancelled() or task.exception() is None
