"""Kraken's front over real sockets: WebSocket v2 methods and channels, faults, REST."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import httpx
import pytest
import websockets

from marketpipe.simulator import FaultPlan
from marketpipe.simulator.kraken import KrakenFront
from tests.simulator.venue_clients import market, read_json

pytestmark = pytest.mark.integration

RFC3339_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@asynccontextmanager
async def front(faults: FaultPlan | None = None, **kwargs: Any) -> AsyncIterator[KrakenFront]:
    venue = KrakenFront(market().market("kraken"), faults, **kwargs)
    await venue.start()
    try:
        yield venue
    finally:
        await venue.stop()


def subscribe(channel: str, symbols: list[str], req_id: int, **params: Any) -> str:
    body = {"method": "subscribe", "params": {"channel": channel, "symbol": symbols, **params}}
    return json.dumps({**body, "req_id": req_id})


async def test_status_on_connect_acks_per_symbol_then_trades_tickers_and_heartbeats() -> None:
    async with front() as kr, websockets.connect(kr.ws_url) as ws:
        assert kr.ws_url.endswith("/v2")
        await ws.send(subscribe("trade", ["BTC/USD", "ETH/USD"], 1, snapshot=False))
        await ws.send(subscribe("ticker", ["BTC/USD"], 2))
        msgs = await read_json(ws, 2.5)
    status = msgs[0]
    assert status["channel"] == "status" and status["data"][0]["system"] == "online"
    acks = [m for m in msgs if m.get("method") == "subscribe"]
    assert [(a["req_id"], a["result"]["symbol"], a["success"]) for a in acks] == [
        (1, "BTC/USD", True),
        (1, "ETH/USD", True),
        (2, "BTC/USD", True),
    ]
    assert acks[0]["result"] == {"channel": "trade", "snapshot": False, "symbol": "BTC/USD"}
    assert RFC3339_US.match(acks[0]["time_in"]) and RFC3339_US.match(acks[0]["time_out"])
    trades = [m for m in msgs if m.get("channel") == "trade"]
    assert trades and all(m["type"] == "update" for m in trades)
    items = [t for m in trades for t in m["data"]]
    assert list(items[0]) == ["symbol", "side", "price", "qty", "ord_type", "trade_id", "timestamp"]
    assert isinstance(items[0]["price"], float) and isinstance(items[0]["qty"], float)
    assert {i["ord_type"] for i in items} <= {"market", "limit"}
    assert any(len(m["data"]) > 1 for m in trades)  # one message per taker order
    for pair in ("BTC/USD", "ETH/USD"):
        ids = [i["trade_id"] for i in items if i["symbol"] == pair]
        assert ids == list(range(ids[0], ids[0] + len(ids)))
    tickers = [m for m in msgs if m.get("channel") == "ticker"]
    assert tickers[0]["type"] == "snapshot" and tickers[-1]["type"] == "update"
    last = tickers[-1]["data"][0]
    assert {"bid", "bid_qty", "ask", "ask_qty", "last", "volume", "vwap"} <= set(last)
    assert last["bid"] < last["ask"]
    beats = [m for m in msgs if m == {"channel": "heartbeat"}]
    assert 2 <= len(beats) <= 4


async def test_trade_side_is_the_takers_and_items_equal_the_ground_truth() -> None:
    async with front() as kr, websockets.connect(kr.ws_url) as ws:
        await ws.send(subscribe("trade", ["BTC/USD"], 7))
        msgs = await read_json(ws, 1.5)
        truth = {t.trade_id: t for t in kr.ground_truth() if t.symbol == "BTC-USD"}
    items = [t for m in msgs if m.get("channel") == "trade" for t in m["data"]]
    assert len(items) > 20
    for item in items:
        trade = truth[item["trade_id"]]
        assert trade.exchange == "kraken" and item["side"] == trade.side
        assert item["price"] == trade.price and item["qty"] == trade.qty
        assert item["price"] * 10 == round(item["price"] * 10)  # BTC/USD ticks 0.1


async def test_trade_snapshot_sends_the_last_50_trades_first() -> None:
    async with front() as kr, websockets.connect(kr.ws_url) as ws:
        await asyncio.sleep(1.0)
        await ws.send(subscribe("trade", ["ETH/USD"], 3, snapshot=True))
        msgs = await read_json(ws, 1.0)
    trade_msgs = [m for m in msgs if m.get("channel") == "trade"]
    assert trade_msgs[0]["type"] == "snapshot" and len(trade_msgs[0]["data"]) == 50
    snap = [t["trade_id"] for t in trade_msgs[0]["data"]]
    following = [t["trade_id"] for m in trade_msgs[1:] for t in m["data"]]
    assert snap == list(range(snap[0], snap[0] + 50)) and following[0] == snap[-1] + 1


async def test_bad_requests_fail_with_success_false_and_ping_answers_pong() -> None:
    async with front() as kr, websockets.connect(kr.ws_url) as ws:
        await ws.send(subscribe("trade", ["DOGE/XYZ"], 4))
        await ws.send(subscribe("book9", ["BTC/USD"], 5))
        await ws.send(json.dumps({"method": "dance", "req_id": 6}))
        await ws.send("not json")
        await ws.send(json.dumps({"method": "ping", "req_id": 8}))
        msgs = await read_json(ws, 1.0, until=lambda m: m.get("method") == "pong")
    replies = [m for m in msgs if "method" in m]
    assert [(r.get("req_id"), r["success"]) for r in replies] == [
        (4, False),
        (5, False),
        (6, False),
        (None, False),
        (8, True),
    ]
    assert replies[0]["error"] == "Currency pair not supported DOGE/XYZ"
    assert replies[-1]["method"] == "pong"


async def test_unsubscribe_stops_the_trades() -> None:
    async with front() as kr, websockets.connect(kr.ws_url) as ws:
        await ws.send(subscribe("trade", ["BTC/USD"], 1))
        await read_json(ws, 0.5)
        body = {"method": "unsubscribe", "params": {"channel": "trade", "symbol": ["BTC/USD"]}}
        await ws.send(json.dumps({**body, "req_id": 2}))
        await read_json(ws, 0.5, until=lambda m: m.get("method") == "unsubscribe")
        later = await read_json(ws, 0.6)
    assert not [m for m in later if m.get("channel") == "trade"]


async def test_faults_apply_on_kraken_stall_then_disconnect() -> None:
    plan = FaultPlan(stall_every_s=0.5, stall_s=1.0, disconnect_every_s=2.5, seed=2)
    async with front(plan) as kr, websockets.connect(kr.ws_url, ping_interval=None) as ws:
        await ws.send(subscribe("trade", ["BTC/USD"], 1))
        gaps: list[float] = []
        last = asyncio.get_running_loop().time()
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 4.0)
                now = asyncio.get_running_loop().time()
                gaps.append(now - last)
                last = now
        counts = kr.fault_counts
    assert counts["stall"] >= 1 and counts["disconnect"] == 1
    assert max(gaps) > 0.8  # silence during the stall, heartbeats included


async def _page_by_last(client: httpx.AsyncClient, since: str, count: int) -> list[list[Any]]:
    rows: list[list[Any]] = []
    while True:
        body = (
            await client.get(
                "/0/public/Trades", params={"pair": "XBTUSD", "since": since, "count": count}
            )
        ).json()
        assert body["error"] == []
        page = body["result"]["XXBTZUSD"]
        rows.extend(page)
        since = body["result"]["last"]
        if len(page) < count:
            return rows


async def test_rest_pages_by_last_through_every_trade_id_exactly_once() -> None:
    async with front(rest_requests_per_s=1000, rest_burst=1000) as kr:
        await asyncio.sleep(1.5)
        async with httpx.AsyncClient(base_url=kr.rest_url) as client:
            rows = await _page_by_last(client, "0", 7)  # small pages: many boundaries
        truth = [t for t in kr.ground_truth() if t.symbol == "BTC-USD"]
    ids = [row[6] for row in rows]
    assert len(ids) > 100 and ids == sorted(set(ids))
    assert ids == [t.trade_id for t in truth][: len(ids)]
    by_id = {t.trade_id: t for t in truth}
    for price, volume, seconds, side, kind, misc, trade_id in rows:
        trade = by_id[trade_id]
        assert float(price) == trade.price and float(volume) == trade.qty
        assert side == ("b" if trade.side == "buy" else "s") and kind in ("m", "l") and misc == ""
        assert Decimal(str(seconds)) * 1_000_000 == trade.ts_event
        assert re.match(r"^\d+\.\d{5}$", price) and re.match(r"^\d+\.\d{8}$", volume)
    # equal timestamps really occur, so `last` must be unique within one
    times = [row[2] for row in rows]
    assert len(set(times)) < len(times)


async def test_rest_since_is_an_exclusive_time_in_seconds_or_nanoseconds() -> None:
    async with front(rest_requests_per_s=1000, rest_burst=1000) as kr:
        await asyncio.sleep(1.0)
        truth = [t for t in kr.ground_truth() if t.symbol == "ETH-USD"]
        pick = truth[len(truth) // 2]
        async with httpx.AsyncClient(base_url=kr.rest_url) as client:
            get = client.get
            inclusive = (
                await get(
                    "/0/public/Trades",
                    params={"pair": "ETHUSD", "since": str(pick.ts_event * 1000 - 1), "count": 3},
                )
            ).json()["result"]
            seconds = f"{pick.ts_event // 1_000_000}.{pick.ts_event % 1_000_000:06d}"
            exclusive = (
                await get("/0/public/Trades", params={"pair": "ETHUSD", "since": seconds})
            ).json()["result"]
            latest = (await get("/0/public/Trades", params={"pair": "XETHZUSD", "count": 4})).json()
    first_at_time = min(t.trade_id for t in truth if t.ts_event == pick.ts_event)
    assert inclusive["XETHZUSD"][0][6] == first_at_time
    after = [t.trade_id for t in truth if t.ts_event > pick.ts_event]
    assert [r[6] for r in exclusive["XETHZUSD"]][: len(after)] == after
    newest = [r[6] for r in latest["result"]["XETHZUSD"]]
    assert newest == sorted(newest) and len(newest) == 4


async def test_rest_errors_come_in_the_error_array() -> None:
    async with (
        front(rest_requests_per_s=0.5, rest_burst=2) as kr,
        httpx.AsyncClient(base_url=kr.rest_url) as client,
    ):
        unknown = (await client.get("/0/public/Trades", params={"pair": "NOPEUSD"})).json()
        ok = await client.get("/0/public/Trades", params={"pair": "XBTUSD"})
        limited = await client.get("/0/public/Trades", params={"pair": "XBTUSD"})
    assert unknown == {"error": ["EQuery:Unknown asset pair"]}
    assert ok.json()["error"] == []
    assert limited.status_code == 200 and limited.json() == {
        "error": ["EGeneral:Too many requests"]
    }


async def test_fault_plan_418_is_krakens_throttle_until() -> None:
    async with (
        front(FaultPlan(rest_418_prob=1.0, retry_after_s=3)) as kr,
        httpx.AsyncClient(base_url=kr.rest_url) as client,
    ):
        body = (await client.get("/0/public/Trades", params={"pair": "XBTUSD"})).json()
    assert len(body["error"]) == 1 and body["error"][0].startswith("EService:Throttled: ")


async def test_asset_pairs_name_the_pairs_as_kraken_does() -> None:
    async with front() as kr, httpx.AsyncClient(base_url=kr.rest_url) as client:
        pairs = (await client.get("/0/public/AssetPairs")).json()["result"]
    assert pairs["XXBTZUSD"]["altname"] == "XBTUSD" and pairs["XXBTZUSD"]["wsname"] == "XBT/USD"
    assert pairs["XXBTZUSD"]["base"] == "XXBT" and pairs["XXBTZUSD"]["quote"] == "ZUSD"
    assert pairs["XXBTZUSD"]["pair_decimals"] == 1 and pairs["XETHZUSD"]["pair_decimals"] == 2


async def test_server_shutdown_is_a_maintenance_status_then_a_close() -> None:
    plan = FaultPlan(server_shutdown_every_s=0.5, server_shutdown_grace_s=0.3)
    async with front(plan) as kr, websockets.connect(kr.ws_url) as ws:
        await ws.send(subscribe("trade", ["BTC/USD"], 1))
        msgs: list[dict[str, Any]] = []
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                msgs.append(json.loads(await asyncio.wait_for(ws.recv(), 3.0)))
    statuses = [m["data"][0]["system"] for m in msgs if m.get("channel") == "status"]
    assert statuses == ["online", "maintenance"]
    assert kr.fault_counts["server_shutdown"] >= 1
