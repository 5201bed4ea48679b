"""Binance-compatible WebSocket streams, pushed straight from the engine's commits.

`/ws/<stream>[/<stream>...]` sends raw payloads, `/stream?streams=a/b` wraps them as
`{"stream": ..., "data": ...}`; both accept `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`
and the `combined` property. Streams: `<sym>@trade`, `<sym>@kline_<interval>` (`x` = final),
`<sym>@bookTicker`, `<sym>@ticker`, plus marketpipe's own `alerts`. `?exchange=` picks another
ingested exchange.

One hub task turns each committed batch into payloads once per subscribed stream; every
connection has a bounded outbox and its own sender, so a slow client is dropped instead of
delaying the others.
"""

import asyncio
import contextlib
import logging
import re
import time
from collections import defaultdict
from typing import Any

import msgspec
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from prometheus_client import Gauge, Histogram

from marketpipe.bus.broadcast import CommitBroadcaster, Committed, Subscription
from marketpipe.model.batch import CommitBatch
from marketpipe.model.intervals import INTERVAL_US
from marketpipe.model.symbols import normalize, to_native
from marketpipe.observability.metrics import REGISTRY
from marketpipe.serving.market import MarketView
from marketpipe.serving.routes_binance import d, ticker_object
from marketpipe.serving.rows import to_rows

log = logging.getLogger(__name__)

WS_CLIENTS = Gauge("api_ws_clients", "Open API WebSocket connections", registry=REGISTRY)
WS_PUSH_SECONDS = Histogram(
    "api_ws_push_seconds",
    "Engine commit to WebSocket send, per pushed frame batch",
    buckets=(0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
    registry=REGISTRY,
)

STREAM = re.compile(r"^([a-z0-9]{2,20})@(trade|bookTicker|ticker|kline_(1m|5m|15m|1h|4h|1d))$")
OUTBOX = 10_000
TICKER_EVERY_S = 1.0


class StreamError(ValueError):
    pass


def check_stream(name: str) -> str:
    if name == "alerts":
        return name
    match = STREAM.fullmatch(name)
    if match is None:
        raise StreamError(f"Invalid request: unknown stream {name!r}")
    try:
        normalize(match.group(1))
    except ValueError:
        raise StreamError(f"Invalid request: unknown symbol in {name!r}") from None
    return name


class Client:
    def __init__(self, ws: WebSocket, exchange: str, combined: bool) -> None:
        self.ws = ws
        self.exchange = exchange
        self.combined = combined
        self.streams: list[str] = []
        self.outbox: asyncio.Queue[str] = asyncio.Queue(OUTBOX)

    def offer(self, text: str) -> bool:
        try:
            self.outbox.put_nowait(text)
            return True
        except asyncio.QueueFull:
            return False


class StreamHub:
    def __init__(self, broadcaster: CommitBroadcaster, view: MarketView) -> None:
        self.broadcaster = broadcaster
        self.view = view
        self.clients: set[Client] = set()
        self._subscription: Subscription | None = None
        self._book_ids: dict[tuple[str, str], int] = defaultdict(int)
        self._ticker_sent: dict[tuple[str, str], float] = {}

    def ensure_running(self) -> None:
        if self._subscription is None:
            self._subscription = self.broadcaster.subscribe(self._on_commit)

    def close(self) -> None:
        if self._subscription is not None:
            self.broadcaster.unsubscribe(self._subscription)
            self._subscription = None

    def _on_commit(self, item: Committed) -> None:
        try:
            self._dispatch(item)
        except Exception:  # a bad batch must not end live pushes
            log.exception("websocket dispatch failed")

    def _wanted(self) -> dict[tuple[str, str], list[Client]]:
        wanted: dict[tuple[str, str], list[Client]] = defaultdict(list)
        for client in self.clients:
            for stream in client.streams:
                wanted[(client.exchange, stream)].append(client)
        return wanted

    def _dispatch(self, item: Committed) -> None:
        wanted = self._wanted()
        if not wanted:
            return
        now_ms = int(time.time() * 1000)
        for (exchange, stream), payload in self._payloads(item.batch, wanted, now_ms):
            text = msgspec.json.encode(payload).decode()
            combined = f'{{"stream":"{stream}","data":{text}}}'
            for client in wanted.get((exchange, stream), ()):
                if not client.offer(combined if client.combined else text):
                    log.warning("dropping a slow websocket client")
                    self.clients.discard(client)
        WS_PUSH_SECONDS.observe((time.perf_counter_ns() - item.committed_ns) / 1e9)

    def _payloads(
        self, batch: CommitBatch, wanted: dict[tuple[str, str], list[Client]], now_ms: int
    ) -> list[tuple[tuple[str, str], Any]]:
        out: list[tuple[tuple[str, str], Any]] = []
        trade_streams = {k for k in wanted if k[1].endswith("@trade")}
        if trade_streams and batch.trades.num_rows:
            columns = batch.trades.select(
                ["exchange", "symbol", "trade_id", "price", "qty", "side", "ts_event"]
            ).to_pydict()
            ts = batch.trades.column("ts_event").cast("int64").to_pylist()
            natives: dict[str, str] = {}
            for ex, sym, tid, price, qty, side, t in zip(
                columns["exchange"],
                columns["symbol"],
                columns["trade_id"],
                columns["price"],
                columns["qty"],
                columns["side"],
                ts,
                strict=True,
            ):
                native = natives.get(sym) or natives.setdefault(sym, to_native(sym))
                key = (ex, f"{native.lower()}@trade")
                if key in trade_streams:
                    out.append(
                        (
                            key,
                            {
                                "e": "trade",
                                "E": now_ms,
                                "s": native,
                                "t": tid,
                                "p": d(price),
                                "q": d(qty),
                                "T": t // 1000,
                                "m": side == "sell",
                                "M": True,
                            },
                        )
                    )
        for c in batch.candles:
            native = to_native(c.symbol)
            key = (c.exchange, f"{native.lower()}@kline_{c.interval}")
            if key in wanted:
                out.append((key, kline_payload(c, native, now_ms)))
        for q in batch.quotes:
            native = to_native(q.symbol)
            key = (q.exchange, f"{native.lower()}@bookTicker")
            if key in wanted:
                self._book_ids[key] += 1
                out.append(
                    (
                        key,
                        {
                            "u": self._book_ids[key],
                            "s": native,
                            "b": d(q.bid),
                            "B": d(q.bid_qty),
                            "a": d(q.ask),
                            "A": d(q.ask_qty),
                        },
                    )
                )
        touched = {(c.exchange, c.symbol) for c in batch.candles if c.interval == "1m"}
        for exchange, symbol in touched:
            key = (exchange, f"{to_native(symbol).lower()}@ticker")
            last = self._ticker_sent.get(key, 0.0)
            if key in wanted and time.monotonic() - last >= TICKER_EVERY_S:
                self._ticker_sent[key] = time.monotonic()
                stats = self.view.stats_24h(exchange, symbol)
                if stats is not None:
                    out.append((key, ticker_payload(stats, self.view, now_ms)))
        for alert in batch.alerts:
            key = (alert.exchange, "alerts")
            if key in wanted:
                out.append((key, {"e": "alert", "E": now_ms} | to_rows([alert])[0]))
        return out

    # ---- connections ---------------------------------------------------------------------

    async def serve(self, ws: WebSocket, streams: list[str], combined: bool) -> None:
        await ws.accept()
        self.ensure_running()
        client = Client(ws, (ws.query_params.get("exchange") or "binance").lower(), combined)
        try:
            client.streams = [check_stream(s) for s in streams if s]
        except StreamError as exc:
            await ws.send_text(
                msgspec.json.encode({"error": {"code": 2, "msg": str(exc)}}).decode()
            )
            await ws.close(1008)
            return
        self.clients.add(client)
        WS_CLIENTS.inc()
        sender = asyncio.create_task(self._send(client))
        try:
            while True:
                reply = self._handle(client, await ws.receive_text())
                if reply is not None:
                    client.offer(msgspec.json.encode(reply).decode())
        except WebSocketDisconnect:
            pass
        finally:
            self.clients.discard(client)
            WS_CLIENTS.dec()
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender

    async def _send(self, client: Client) -> None:
        while client in self.clients or not client.outbox.empty():
            text = await client.outbox.get()
            await client.ws.send_text(text)
        with contextlib.suppress(Exception):
            await client.ws.close(1008)

    def _handle(self, client: Client, text: str) -> dict[str, Any] | None:
        try:
            request = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return {"error": {"code": 3, "msg": "Invalid JSON: malformed message"}}
        if not isinstance(request, dict):
            return {"error": {"code": 2, "msg": "Invalid request: not an object"}}
        rid = request.get("id")
        method = request.get("method")
        params = request.get("params", [])
        if not isinstance(params, list):
            return {"error": {"code": 1, "msg": "Invalid value type: expected array"}, "id": rid}
        try:
            if method == "SUBSCRIBE":
                for name in params:
                    stream = check_stream(str(name))
                    if stream not in client.streams:
                        client.streams.append(stream)
                return {"result": None, "id": rid}
            if method == "UNSUBSCRIBE":
                client.streams = [s for s in client.streams if s not in params]
                return {"result": None, "id": rid}
            if method == "LIST_SUBSCRIPTIONS":
                return {"result": list(client.streams), "id": rid}
            if method == "SET_PROPERTY" and len(params) == 2 and params[0] == "combined":
                client.combined = bool(params[1])
                return {"result": None, "id": rid}
            if method == "GET_PROPERTY" and params == ["combined"]:
                return {"result": client.combined, "id": rid}
        except StreamError as exc:
            return {"error": {"code": 2, "msg": str(exc)}, "id": rid}
        return {
            "error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"},
            "id": rid,
        }


def kline_payload(c: Any, native: str, now_ms: int) -> dict[str, Any]:
    return {
        "e": "kline",
        "E": now_ms,
        "s": native,
        "k": {
            "t": c.open_time // 1000,
            "T": c.open_time // 1000 + INTERVAL_US[c.interval] // 1000 - 1,
            "s": native,
            "i": c.interval,
            "f": c.first_trade_id,
            "L": c.last_trade_id,
            "o": d(c.open),
            "c": d(c.close),
            "h": d(c.high),
            "l": d(c.low),
            "v": d(c.volume),
            "n": c.trade_count,
            "x": c.is_final,
            "q": d(c.quote_volume),
            "V": d(c.taker_buy_volume),
            "Q": d(c.taker_buy_quote_volume),
            "B": "0",
        },
    }


def ticker_payload(stats: Any, view: MarketView, now_ms: int) -> dict[str, Any]:
    t = ticker_object(stats, view.quotes().get((stats.exchange, stats.symbol)))
    return {
        "e": "24hrTicker",
        "E": now_ms,
        "s": t["symbol"],
        "p": t["priceChange"],
        "P": t["priceChangePercent"],
        "w": t["weightedAvgPrice"],
        "x": t["prevClosePrice"],
        "c": t["lastPrice"],
        "Q": t["lastQty"],
        "b": t["bidPrice"],
        "B": t["bidQty"],
        "a": t["askPrice"],
        "A": t["askQty"],
        "o": t["openPrice"],
        "h": t["highPrice"],
        "l": t["lowPrice"],
        "v": t["volume"],
        "q": t["quoteVolume"],
        "O": t["openTime"],
        "C": t["closeTime"],
        "F": t["firstId"],
        "L": t["lastId"],
        "n": t["count"],
    }


def websocket_router(hub: StreamHub) -> APIRouter:
    router = APIRouter()

    @router.websocket("/ws")
    async def ws_plain(ws: WebSocket) -> None:
        await hub.serve(ws, [], combined=False)

    @router.websocket("/ws/{streams:path}")
    async def ws_raw(ws: WebSocket, streams: str) -> None:
        await hub.serve(ws, streams.split("/"), combined=False)

    @router.websocket("/stream")
    async def ws_combined(ws: WebSocket) -> None:
        await hub.serve(ws, (ws.query_params.get("streams") or "").split("/"), combined=True)

    return router
