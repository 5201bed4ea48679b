"""Binance-compatible WebSocket streams, pushed straight from the engine's commits.

Connect as to Binance: `/ws` or `/ws/` then `SUBSCRIBE`, `/ws/<stream>[/<stream>...]` (raw
payloads), `/stream`, `/stream/` or `/stream?streams=a/b` (payloads wrapped as
`{"stream": ..., "data": ...}`); `?timeUnit=MICROSECOND` gives microsecond times. Requests
and replies are in `ws_protocol`. Streams: `<sym>@trade`, `<sym>@aggTrade` (one trade per
aggregate), `<sym>@kline_<interval>` (`x` = final), `<sym>@bookTicker`, `<sym>@ticker`,
`<sym>@miniTicker`, plus marketpipe's own `alerts`. `?exchange=` picks another ingested
exchange. The ASGI server pings every connection (uvicorn: every 20 s, as Binance) and closes
one that does not answer.

Two stages per batch (see `bus/broadcast.py`): trades, aggTrades, bookTickers and klines not
yet closed (`x: false`) go out as soon as the engine has folded them, before the commit;
closed klines (`x: true`), tickers (read from the store) and alerts go out once the commit is
durable. Each payload goes out once. `?provisional=true` (ours, not Binance's) adds
`"provisional": true|false` to every payload: true when it left before its batch was durable.

One hub task turns each batch into payloads once per subscribed stream and time unit; every
connection has a bounded outbox and its own sender, so a slow client is dropped (logged
once, closed with 1008) instead of delaying the others.
"""

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import msgspec
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from prometheus_client import Counter, Gauge, Histogram

from marketpipe.bus.broadcast import (
    Abandoned,
    CommitBroadcaster,
    Committed,
    Provisional,
    Publication,
    Subscription,
)
from marketpipe.model.batch import CommitBatch
from marketpipe.model.intervals import INTERVAL_US
from marketpipe.model.symbols import to_native
from marketpipe.observability.metrics import REGISTRY
from marketpipe.serving.binance_rows import d, ticker_object
from marketpipe.serving.market import MarketView
from marketpipe.serving.rows import to_rows
from marketpipe.serving.ws_protocol import (
    Session,
    StreamError,
    check_stream,
    error,
    path_streams,
    time_unit,
)

log = logging.getLogger(__name__)

WS_CLIENTS = Gauge("api_ws_clients", "Open API WebSocket connections", registry=REGISTRY)
WS_DROPPED = Counter(
    "api_ws_slow_clients_dropped", "WebSocket clients dropped for a full outbox", registry=REGISTRY
)
WS_PUSH_SECONDS = Histogram(
    "api_ws_push_seconds",
    "Engine commit to WebSocket send, per pushed frame batch",
    buckets=(0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
    registry=REGISTRY,
)
WS_PROVISIONAL_PUSH_SECONDS = Histogram(
    "api_ws_provisional_push_seconds",
    "Engine fold (before the commit) to WebSocket send, per provisional frame batch",
    buckets=(0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
    registry=REGISTRY,
)
WS_ABANDONED = Counter(
    "api_ws_provisional_abandoned",
    "Batches pushed provisionally whose commit then failed",
    registry=REGISTRY,
)

OUTBOX = 10_000
TICKER_EVERY_S = 1.0  # Binance's ticker update speed
SLOW_CLOSE_CODE = 1008

__all__ = ["StreamError", "StreamHub", "check_stream", "websocket_router"]

# A payload built for one time unit: `build(micros)`.
Build = Callable[[bool], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Part:
    """Which records of a batch one push carries."""

    live: bool  # trades, aggTrades, bookTickers: as they came
    open_candles: bool  # klines not closed yet (x: false)
    final_candles: bool  # closed klines (x: true), only once durable
    derived: bool  # tickers (read from the store) and alerts: once durable
    provisional: bool  # pushed before the batch was durable


PROVISIONAL = Part(live=True, open_candles=True, final_candles=False, derived=False,
                   provisional=True)  # fmt: skip
# What is left of a batch once durable, for clients that had its provisional part.
DURABLE_REMAINDER = Part(live=False, open_candles=False, final_candles=True, derived=True,
                         provisional=False)  # fmt: skip
WHOLE = Part(live=True, open_candles=True, final_candles=True, derived=True, provisional=False)


def _encode(value: Any) -> str:
    return msgspec.json.encode(value).decode()


class Client:
    def __init__(
        self,
        ws: WebSocket,
        exchange: str,
        session: Session,
        micros: bool = False,
        marked: bool = False,
    ) -> None:
        self.ws = ws
        self.exchange = exchange
        self.session = session
        self.micros = micros
        self.marked = marked  # `?provisional=true`: payloads say whether they were durable
        self.outbox: asyncio.Queue[str] = asyncio.Queue(OUTBOX)
        self.dropped = False
        self.sender: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None

    @property
    def streams(self) -> list[str]:
        return self.session.streams

    @property
    def combined(self) -> bool:
        return self.session.combined

    def offer(self, text: str) -> bool:
        try:
            self.outbox.put_nowait(text)
            return True
        except asyncio.QueueFull:
            return False

    def close_slow(self) -> None:
        """Stop sending and close with 1008: the unsent frames would only arrive later and
        later."""
        if self.sender is not None:
            self.sender.cancel()
        self._closing = asyncio.get_running_loop().create_task(self._close())

    async def _close(self) -> None:
        with contextlib.suppress(Exception):  # already gone: nothing left to close
            await self.ws.close(SLOW_CLOSE_CODE, "slow client: outbox full")


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
            self._subscription = self.broadcaster.subscribe(self._on_publication, provisional=True)

    def close(self) -> None:
        if self._subscription is not None:
            self.broadcaster.unsubscribe(self._subscription)
            self._subscription = None

    def _on_publication(self, item: Publication) -> None:
        try:
            if isinstance(item, Provisional):
                self._dispatch(item.batch, PROVISIONAL, item.folded_ns)
            elif isinstance(item, Committed):
                part = DURABLE_REMAINDER if item.early else WHOLE
                self._dispatch(item.batch, part, item.committed_ns)
            else:
                self._abandoned(item)
        except Exception:  # a bad batch must not end live pushes
            log.exception("websocket dispatch failed")

    def _abandoned(self, item: Abandoned) -> None:
        """Binance's protocol has no retraction: the frames stay sent. Their trades are not
        stored; a restart back-fills them with the same ids where the venue has ids and the
        symbol a stored position (docs/performance.md, "provisional and durable pushes")."""
        WS_ABANDONED.inc()
        log.warning(
            "%d trades and %d candles were pushed provisionally but their commit failed (%s)",
            item.batch.trades.num_rows,
            sum(1 for c in item.batch.candles if not c.is_final),
            item.error,
        )

    def _wanted(self) -> dict[tuple[str, str], list[Client]]:
        wanted: dict[tuple[str, str], list[Client]] = defaultdict(list)
        for client in self.clients:
            for stream in client.streams:
                wanted[(client.exchange, stream)].append(client)
        return wanted

    def drop(self, client: Client) -> None:
        """Drop a client whose outbox is full: once, however many frames were refused."""
        if client.dropped:
            return
        client.dropped = True
        self.clients.discard(client)
        WS_DROPPED.inc()
        log.warning(
            "dropping a slow websocket client (%d frames unsent, streams %s)",
            client.outbox.qsize(),
            ",".join(client.streams[:5]) + ("..." if len(client.streams) > 5 else ""),
        )
        client.close_slow()

    def _dispatch(self, batch: CommitBatch, part: Part, since_ns: int) -> None:
        wanted = self._wanted()
        if not wanted:
            return
        mark = ',"provisional":true}' if part.provisional else ',"provisional":false}'
        for key, build in self._payloads(batch, wanted, part):
            texts: dict[tuple[bool, bool, bool], str] = {}
            data: dict[tuple[bool, bool], str] = {}
            for client in wanted[key]:
                if client.dropped:
                    continue
                form = (client.micros, client.combined, client.marked)
                text = texts.get(form)
                if text is None:
                    shape = (client.micros, client.marked)
                    raw = data.get(shape)
                    if raw is None:
                        raw = _encode(build(client.micros))
                        if client.marked:  # every payload is a JSON object: one more key
                            raw = raw[:-1] + mark
                        data[shape] = raw
                    text = f'{{"stream":"{key[1]}","data":{raw}}}' if client.combined else raw
                    texts[form] = text
                if not client.offer(text):
                    self.drop(client)
        seconds = (time.perf_counter_ns() - since_ns) / 1e9
        (WS_PROVISIONAL_PUSH_SECONDS if part.provisional else WS_PUSH_SECONDS).observe(seconds)

    def _payloads(
        self, batch: CommitBatch, wanted: dict[tuple[str, str], list[Client]], part: Part
    ) -> Iterator[tuple[tuple[str, str], Build]]:
        now_us = time.time_ns() // 1000

        trade_streams = {k for k in wanted if k[1].endswith(("@trade", "@aggTrade"))}
        if part.live and trade_streams and batch.trades.num_rows:
            columns = batch.trades.select(
                ["exchange", "symbol", "trade_id", "price", "qty", "side"]
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
                lower = native.lower()
                fields = {"p": d(price), "q": d(qty)}
                if (ex, f"{lower}@trade") in trade_streams:
                    yield (ex, f"{lower}@trade"), _trade(native, tid, fields, side, t, now_us)
                if (ex, f"{lower}@aggTrade") in trade_streams:
                    yield (ex, f"{lower}@aggTrade"), _agg(native, tid, fields, side, t, now_us)
        for c in batch.candles:
            if not (part.final_candles if c.is_final else part.open_candles):
                continue
            native = to_native(c.symbol)
            key = (c.exchange, f"{native.lower()}@kline_{c.interval}")
            if key in wanted:
                yield key, partial(kline_payload, c, native, now_us)
        for q in batch.quotes if part.live else ():
            key = (q.exchange, f"{to_native(q.symbol).lower()}@bookTicker")
            if key in wanted:
                self._book_ids[key] += 1
                book = {
                    "u": self._book_ids[key],
                    "s": to_native(q.symbol),
                    "b": d(q.bid),
                    "B": d(q.bid_qty),
                    "a": d(q.ask),
                    "A": d(q.ask_qty),
                }
                yield key, partial(_as_is, book)
        if not part.derived:  # tickers read the store: not before the batch is in it
            return
        touched = {(c.exchange, c.symbol) for c in batch.candles if c.interval == "1m"}
        for exchange, symbol in sorted(touched):
            lower = to_native(symbol).lower()
            keys = [
                k
                for k in ((exchange, f"{lower}@ticker"), (exchange, f"{lower}@miniTicker"))
                if k in wanted
                and time.monotonic() - self._ticker_sent.get(k, 0.0) >= TICKER_EVERY_S
            ]
            if not keys:
                continue
            stats = self.view.stats_24h(exchange, symbol)
            if stats is None:
                continue
            for key in keys:
                self._ticker_sent[key] = time.monotonic()
                mini = key[1].endswith("@miniTicker")
                yield key, partial(_ticker, stats, self.view, now_us, mini)
        for alert in batch.alerts:
            key = (alert.exchange, "alerts")
            if key in wanted:
                row = to_rows([alert])[0]
                yield key, partial(_alert, row, now_us)

    # ---- connections ---------------------------------------------------------------------

    async def serve(self, ws: WebSocket, segments: list[str], combined: bool) -> None:
        await ws.accept()
        self.ensure_running()
        try:
            micros = time_unit(ws.query_params.get("timeUnit"))
            streams = path_streams(segments)
        except StreamError as exc:
            # Refused before any data: say why, then close (1008 = policy violation).
            await ws.send_text(_encode(error(2, str(exc))))
            await ws.close(1008)
            return
        exchange = (ws.query_params.get("exchange") or "binance").lower()
        marked = (ws.query_params.get("provisional") or "").lower() in ("true", "1")
        client = Client(ws, exchange, Session(combined, streams), micros, marked)
        self.clients.add(client)
        WS_CLIENTS.inc()
        client.sender = asyncio.create_task(self._send(client))
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                request = message.get("text")
                if request is None:
                    request = message.get("bytes")
                if request is None or client.dropped:
                    continue
                if not client.offer(_encode(client.session.handle(request))):
                    self.drop(client)
        except WebSocketDisconnect:
            pass
        finally:
            self.clients.discard(client)
            WS_CLIENTS.dec()
            client.sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await client.sender

    async def _send(self, client: Client) -> None:
        try:
            while True:
                await client.ws.send_text(await client.outbox.get())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the peer is gone; the receive loop ends the session
            log.debug("websocket send ended: %s", exc)


def _trade(native: str, tid: int, fields: dict[str, str], side: str, t: int, now_us: int) -> Build:
    def build(micros: bool) -> dict[str, Any]:
        unit = 1 if micros else 1000
        return {"e": "trade", "E": now_us // unit, "s": native, "t": tid} | fields | {
            "T": t // unit, "m": side == "sell", "M": True,
        }  # fmt: skip

    return build


def _as_is(payload: dict[str, Any], micros: bool) -> dict[str, Any]:
    return payload  # no times in it (Binance's bookTicker has none)


def _alert(row: dict[str, Any], now_us: int, micros: bool) -> dict[str, Any]:
    return {"e": "alert", "E": now_us if micros else now_us // 1000} | row


def _ticker(stats: Any, view: MarketView, now_us: int, mini: bool, micros: bool) -> dict[str, Any]:
    return ticker_payload(stats, view, now_us, micros, mini)


def _agg(native: str, tid: int, fields: dict[str, str], side: str, t: int, now_us: int) -> Build:
    # Every trade of ours is its own aggregate: one taker order, one fill.
    def build(micros: bool) -> dict[str, Any]:
        unit = 1 if micros else 1000
        return {"e": "aggTrade", "E": now_us // unit, "s": native, "a": tid} | fields | {
            "f": tid, "l": tid, "T": t // unit, "m": side == "sell", "M": True,
        }  # fmt: skip

    return build


def kline_payload(c: Any, native: str, now_us: int, micros: bool = False) -> dict[str, Any]:
    unit = 1 if micros else 1000
    return {
        "e": "kline",
        "E": now_us // unit,
        "s": native,
        "k": {
            "t": c.open_time // unit,
            "T": (c.open_time + INTERVAL_US[c.interval]) // unit - 1,
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


def ticker_payload(
    stats: Any, view: MarketView, now_us: int, micros: bool = False, mini: bool = False
) -> dict[str, Any]:
    unit = 1 if micros else 1000
    t = ticker_object(stats, view.quotes().get((stats.exchange, stats.symbol)))
    if mini:
        return {
            "e": "24hrMiniTicker", "E": now_us // unit, "s": t["symbol"], "c": t["lastPrice"],
            "o": t["openPrice"], "h": t["highPrice"], "l": t["lowPrice"], "v": t["volume"],
            "q": t["quoteVolume"],
        }  # fmt: skip
    return {
        "e": "24hrTicker",
        "E": now_us // unit,
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
        "O": stats.open_time // unit,
        "C": stats.close_time // unit - 1,
        "F": t["firstId"],
        "L": t["lastId"],
        "n": t["count"],
    }


def websocket_router(hub: StreamHub) -> APIRouter:
    router = APIRouter()

    # Binance's paths, each with and without the trailing slash clients send: `/ws` and
    # `/ws/` then SUBSCRIBE, `/ws/<a>/<b>`, `/stream`, `/stream/`, `/stream?streams=a/b`.
    @router.websocket("/ws")
    async def ws_plain(ws: WebSocket) -> None:
        await hub.serve(ws, [], combined=False)

    @router.websocket("/ws/{streams:path}")
    async def ws_raw(ws: WebSocket, streams: str) -> None:
        await hub.serve(ws, streams.split("/"), combined=False)

    @router.websocket("/stream")
    async def ws_combined(ws: WebSocket) -> None:
        await hub.serve(ws, (ws.query_params.get("streams") or "").split("/"), combined=True)

    @router.websocket("/stream/")
    async def ws_combined_slash(ws: WebSocket) -> None:
        await hub.serve(ws, (ws.query_params.get("streams") or "").split("/"), combined=True)

    return router
