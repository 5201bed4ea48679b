"""Coinbase's front over real sockets: ws-feed subscribe protocol, frames, faults, REST."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import websockets

from marketpipe.simulator import FaultPlan
from marketpipe.simulator.coinbase import CoinbaseFront
from tests.simulator.venue_clients import market, read_json

pytestmark = pytest.mark.integration

ISO_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
SUBSCRIBE = {
    "type": "subscribe",
    "product_ids": ["BTC-USD", "ETH-USD"],
    "channels": ["matches", "heartbeat", {"name": "ticker", "product_ids": ["BTC-USD"]}],
}


@asynccontextmanager
async def front(faults: FaultPlan | None = None, **kwargs: Any) -> AsyncIterator[CoinbaseFront]:
    venue = CoinbaseFront(market().market("coinbase"), faults, **kwargs)
    await venue.start()
    try:
        yield venue
    finally:
        await venue.stop()


async def test_subscribe_is_acknowledged_then_last_match_then_live_matches() -> None:
    async with front() as cb, websockets.connect(cb.ws_url) as ws:
        await asyncio.sleep(0.3)  # some trades first, so last_match has one to show
        await ws.send(json.dumps(SUBSCRIBE))
        msgs = await read_json(ws, 3.0)
    assert msgs[0] == {
        "type": "subscriptions",
        "channels": [
            {"name": "matches", "product_ids": ["BTC-USD", "ETH-USD"]},
            {"name": "heartbeat", "product_ids": ["BTC-USD", "ETH-USD"]},
            {"name": "ticker", "product_ids": ["BTC-USD"]},
        ],
    }
    kinds = [m["type"] for m in msgs]
    assert kinds[1:3] == ["last_match", "last_match"]
    assert {m["product_id"] for m in msgs[1:3]} == {"BTC-USD", "ETH-USD"}
    matches = [m for m in msgs if m["type"] == "match"]
    assert len(matches) > 50
    first = matches[0]
    assert list(first) == [
        "type", "trade_id", "maker_order_id", "taker_order_id", "side", "size", "price",
        "product_id", "sequence", "time",
    ]  # fmt: skip
    assert ISO_US.match(first["time"]) and first["side"] in ("buy", "sell")
    for product in ("BTC-USD", "ETH-USD"):
        own = [
            m for m in msgs if m["type"] in ("last_match", "match") and m["product_id"] == product
        ]
        ids = [m["trade_id"] for m in own]
        assert ids == list(range(ids[0], ids[0] + len(ids)))  # last_match then the next ids
        seqs = [m["sequence"] for m in own]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    tickers = [m for m in msgs if m["type"] == "ticker"]
    assert tickers and {t["product_id"] for t in tickers} == {"BTC-USD"}
    assert {"best_bid", "best_ask", "best_bid_size", "best_ask_size", "trade_id"} <= set(tickers[0])
    assert float(tickers[-1]["best_bid"]) < float(tickers[-1]["best_ask"])
    beats = [m for m in msgs if m["type"] == "heartbeat"]
    assert {b["product_id"] for b in beats} == {"BTC-USD", "ETH-USD"}
    assert 4 <= len(beats) <= 8  # one per product per second for about 3 s


async def test_match_side_is_the_makers_and_frames_equal_the_ground_truth() -> None:
    async with front() as cb, websockets.connect(cb.ws_url) as ws:
        await ws.send(
            json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["matches"]})
        )
        msgs = await read_json(ws, 1.5)
        truth = {t.trade_id: t for t in cb.ground_truth() if t.symbol == "BTC-USD"}
    matches = [m for m in msgs if m["type"] == "match"]
    assert len(matches) > 20
    for m in matches:
        trade = truth[m["trade_id"]]
        assert trade.exchange == "coinbase"
        assert float(m["price"]) == trade.price and float(m["size"]) == trade.qty
        assert m["side"] == ("sell" if trade.side == "buy" else "buy")  # maker = not taker
        assert re.match(r"^\d+\.\d{2}$", m["price"]) and re.match(r"^\d+\.\d{8}$", m["size"])


async def test_bad_requests_get_error_frames_and_the_connection_stays() -> None:
    async with front() as cb, websockets.connect(cb.ws_url) as ws:
        await ws.send("{not json")
        await ws.send(
            json.dumps({"type": "subscribe", "product_ids": ["DOGE-XYZ"], "channels": ["matches"]})
        )
        await ws.send(
            json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["level9"]})
        )
        await ws.send(json.dumps({"type": "hello"}))
        msgs = await read_json(ws, 1.0)
        assert [m["type"] for m in msgs[:4]] == ["error"] * 4
        assert msgs[1]["reason"] == "DOGE-XYZ is not a valid product"
        assert msgs[2]["reason"] == "level9 is not a valid channel"
        await ws.send(
            json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["matches"]})
        )
        ok = await read_json(ws, 2.0, until=lambda m: m["type"] == "subscriptions")
        assert ok[-1]["type"] == "subscriptions"


async def test_unsubscribe_stops_a_channel() -> None:
    async with front() as cb, websockets.connect(cb.ws_url) as ws:
        sub = {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["matches"]}
        await ws.send(json.dumps(sub))
        await read_json(ws, 0.5)
        await ws.send(json.dumps({**sub, "type": "unsubscribe"}))
        msgs = await read_json(ws, 1.0, until=lambda m: m["type"] == "subscriptions")
        assert msgs[-1] == {"type": "subscriptions", "channels": []}
        assert not await read_json(ws, 0.5)


async def test_a_client_that_never_subscribes_is_closed() -> None:
    async with front(subscribe_timeout_s=0.3) as cb, websockets.connect(cb.ws_url) as ws:
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 2.0)


async def test_faults_apply_on_coinbase_drop_duplicate_and_disconnect() -> None:
    plan = FaultPlan(
        drop_prob=0.05, duplicate_prob=0.05, malformed_prob=0.1, disconnect_every_s=1.5, seed=3
    )
    async with front(plan) as cb, websockets.connect(cb.ws_url) as ws:
        await ws.send(
            json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["matches"]})
        )
        raw: list[str] = []
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                raw.append(str(await asyncio.wait_for(ws.recv(), 3.0)))
        counts = cb.fault_counts
    assert counts["disconnect"] == 1 and counts["drop"] > 0 and counts["duplicate"] > 0
    bodies, garbage = [], 0
    for text in raw:
        try:
            bodies.append(json.loads(text))
        except json.JSONDecodeError:
            garbage += 1
    # garbage follows frames of every topic; only that of subscribed ones reaches us
    assert 0 < garbage <= counts["malformed"]
    ids = [m["trade_id"] for m in bodies if m.get("type") == "match"]
    assert len(ids) - len(set(ids)) > 0  # duplicates arrived
    assert max(ids) - min(ids) + 1 > len(set(ids))  # and a gap where a drop was


async def test_rest_pages_back_through_every_trade_exactly_once() -> None:
    async with front() as cb:
        await asyncio.sleep(1.5)
        seen: list[int] = []
        async with httpx.AsyncClient(base_url=cb.rest_url) as client:
            response = await client.get("/products/BTC-USD/trades", params={"limit": 37})
            newest_first_page = response.json()
            cursor = response.headers["CB-AFTER"]
            assert response.headers["CB-BEFORE"] == str(newest_first_page[0]["trade_id"])
            seen.extend(t["trade_id"] for t in newest_first_page)
            while True:
                await asyncio.sleep(0.1)  # 10 requests a second
                response = await client.get(
                    "/products/BTC-USD/trades", params={"limit": 37, "after": cursor}
                )
                page = response.json()
                if not page:
                    break
                seen.extend(t["trade_id"] for t in page)
                cursor = response.headers["CB-AFTER"]
            # `before` walks forward again from the oldest
            oldest = min(seen)
            response = await client.get(
                "/products/BTC-USD/trades", params={"limit": 5, "before": oldest}
            )
            newer = [t["trade_id"] for t in response.json()]
        truth = [t.trade_id for t in cb.ground_truth() if t.symbol == "BTC-USD"]
    assert len(seen) > 100
    assert seen == sorted(seen, reverse=True)  # newest first, page after page
    assert sorted(seen) == [t for t in truth if t <= max(seen)]  # every trade once
    assert newer == [oldest + 5, oldest + 4, oldest + 3, oldest + 2, oldest + 1]
    trade = newest_first_page[0]
    assert list(trade) == ["time", "trade_id", "price", "size", "side"]
    assert ISO_US.match(trade["time"])


async def test_rest_trade_side_is_the_makers() -> None:
    async with front() as cb:
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(base_url=cb.rest_url) as client:
            page = (await client.get("/products/ETH-USD/trades", params={"limit": 50})).json()
        truth = {t.trade_id: t for t in cb.ground_truth() if t.symbol == "ETH-USD"}
    assert page
    for row in page:
        taker = truth[row["trade_id"]].side
        assert row["side"] == ("sell" if taker == "buy" else "buy")
        assert float(row["price"]) == truth[row["trade_id"]].price


async def test_rest_answers_429_past_its_rate_limit_and_404_for_unknown_products() -> None:
    async with (
        front(rest_requests_per_s=1.0, rest_burst=3.0) as cb,
        httpx.AsyncClient(base_url=cb.rest_url) as client,
    ):
        statuses = [(await client.get("/products/BTC-USD/trades")).status_code for _ in range(5)]
        limited = await client.get("/products/BTC-USD/trades")
        await asyncio.sleep(1.1)
        missing = await client.get("/products/NOPE-USD/trades")
    assert statuses == [200, 200, 200, 429, 429]
    assert limited.status_code == 429 and limited.json() == {
        "message": "Public rate limit exceeded"
    }
    assert missing.status_code == 404 and missing.json() == {"message": "NotFound"}


async def test_fault_plan_429s_on_coinbase_rest() -> None:
    async with (
        front(FaultPlan(rest_429_prob=1.0)) as cb,
        httpx.AsyncClient(base_url=cb.rest_url) as client,
    ):
        response = await client.get("/products")
    assert response.status_code == 429 and cb.fault_counts["rest_429"] == 1


async def test_products_list_the_listings_with_their_increments() -> None:
    async with front() as cb, httpx.AsyncClient(base_url=cb.rest_url) as client:
        products = (await client.get("/products")).json()
    by_id = {p["id"]: p for p in products}
    assert set(by_id) == {"BTC-USD", "ETH-USD"}
    assert by_id["BTC-USD"]["quote_increment"] == "0.01"
    assert by_id["BTC-USD"]["base_increment"] == "0.00000001"


async def test_reorder_swaps_neighbours_and_loses_nothing_on_coinbase() -> None:
    async with (
        front(FaultPlan(reorder_prob=0.05, seed=5)) as cb,
        websockets.connect(cb.ws_url) as ws,
    ):
        sub = {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["matches"]}
        await ws.send(json.dumps(sub))
        msgs = await read_json(ws, 2.0)
        counts = cb.fault_counts
    ids = [m["trade_id"] for m in msgs if m["type"] == "match"]
    assert counts["reorder"] > 0
    assert ids != sorted(ids)  # some arrived out of order
    # a held frame goes out right after its successor: nothing between first and last is lost
    assert sorted(ids) == list(range(min(ids), max(ids) + 1))
