"""The Finnhub front with a real `websockets` client: token, subscribe and unsubscribe,
batches per symbol, pings, errors, faults, and US market hours."""

import asyncio
import itertools
import json
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from marketpipe.simulator.faults import FaultPlan
from marketpipe.simulator.finnhub import FinnhubFront, MarketHours, stock_market
from marketpipe.simulator.finnhub.feed import FinnhubFeed

NY = ZoneInfo("America/New_York")


def ny_us(*args: int) -> int:
    return int(datetime(*args, tzinfo=NY).timestamp() * 1_000_000)


async def recv_json(ws: ClientConnection, within: float = 2.0) -> dict[str, object]:
    raw = await asyncio.wait_for(ws.recv(), within)
    body = json.loads(raw)
    assert isinstance(body, dict)
    return body


async def trade_frames(ws: ClientConnection, n: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    while len(out) < n:
        body = await recv_json(ws)
        if body["type"] == "trade":
            out.append(body)
    return out


async def test_wrong_or_missing_token_gets_the_error_frame_and_a_close() -> None:
    async with FinnhubFront(stock_market(["AAPL"], 50, seed=1), token="right") as front:
        for url in (front.url_with_token("wrong"), front.ws_url):
            async with websockets.connect(url) as ws:
                assert await recv_json(ws) == {"type": "error", "msg": "Invalid API key"}
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 2)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert front.rejected == 2


async def test_subscribed_symbols_arrive_in_per_symbol_batches_of_the_documented_shape() -> None:
    async with (
        FinnhubFront(stock_market(["AAPL", "MSFT", "BRK.B"], 300, seed=2), token="t") as front,
        websockets.connect(front.url_with_token()) as ws,
    ):
        for ticker in ("AAPL", "BRK.B"):
            await ws.send(json.dumps({"type": "subscribe", "symbol": ticker}))
        frames = await trade_frames(ws, 40)
    seen: set[str] = set()
    for body in frames:
        assert set(body) == {"type", "data"}
        data = body["data"]
        assert isinstance(data, list) and 1 <= len(data) <= 50
        assert len({d["s"] for d in data}) == 1  # one symbol per message
        for d in data:
            assert set(d) - {"c"} == {"s", "p", "t", "v"}
            assert d.get("c") is None or all(isinstance(c, str) for c in d["c"])
            assert isinstance(d["t"], int) and d["t"] > 1_600_000_000_000  # ms
            assert isinstance(d["v"], int) and d["v"] >= 1  # whole shares
            assert round(d["p"] * 100) == pytest.approx(d["p"] * 100, abs=1e-6)  # cent ticks
            seen.add(d["s"])
    assert seen == {"AAPL", "BRK.B"}  # never MSFT


async def test_sent_trades_equal_the_ground_truth_in_order() -> None:
    start = time.time_ns() // 1000 + 300_000  # trades begin after the client subscribed
    async with (
        FinnhubFront(stock_market(["AAPL"], 400, seed=3, start_us=start), token="t") as front,
        websockets.connect(front.url_with_token()) as ws,
    ):
        await ws.send(json.dumps({"type": "subscribe", "symbol": "AAPL"}))
        frames = await trade_frames(ws, 30)
        truth = front.ground_truth()
    got = [(d["p"], d["v"], d["t"]) for body in frames for d in body["data"]]  # type: ignore[attr-defined]
    want = [(t.price, t.qty, t.ts_event // 1000) for t in truth][: len(got)]
    assert got == want
    assert all(t.exchange == "finnhub" and t.symbol == "AAPL-USD" for t in truth)


async def test_unsubscribe_stops_a_symbol() -> None:
    server = FinnhubFront(stock_market(["AAPL", "MSFT"], 400, seed=4), token="t")
    async with server as front, websockets.connect(front.url_with_token()) as ws:
        for t in ("AAPL", "MSFT"):
            await ws.send(json.dumps({"type": "subscribe", "symbol": t}))
        await trade_frames(ws, 5)
        await ws.send(json.dumps({"type": "unsubscribe", "symbol": "MSFT"}))
        await asyncio.sleep(0.1)  # frames already queued may still come
        await trade_frames(ws, 5)
        later = await trade_frames(ws, 20)
    assert {d["s"] for body in later for d in body["data"]} == {"AAPL"}  # type: ignore[attr-defined]


async def test_too_many_symbols_and_bad_messages_get_error_frames() -> None:
    server = FinnhubFront(stock_market(["AAPL"], 10, seed=5), token="t", max_symbols=2)
    async with server as front, websockets.connect(front.url_with_token()) as ws:
        for t in ("A", "B", "C"):
            await ws.send(json.dumps({"type": "subscribe", "symbol": t}))
        assert await recv_json(ws) == {
            "type": "error",
            "msg": "Subscribing to too many symbols",
        }
        for bad in ("nope", '{"type":"subscribe"}', '{"type":"sub","symbol":"A"}'):
            await ws.send(bad)
            assert await recv_json(ws) == {"type": "error", "msg": "Invalid message"}
        await ws.send(json.dumps({"type": "unsubscribe", "symbol": "B"}))
        await ws.send(json.dumps({"type": "subscribe", "symbol": "C"}))  # room again
        await ws.send("nope")
        assert await recv_json(ws) == {"type": "error", "msg": "Invalid message"}
        assert ws.state.name == "OPEN"


async def test_pings_come_on_schedule_even_with_no_subscription() -> None:
    async with (
        FinnhubFront(stock_market(["AAPL"], 10, seed=6), token="t", ping_every_s=0.1) as front,
        websockets.connect(front.url_with_token()) as ws,
    ):
        began = time.monotonic()
        for _ in range(3):
            assert await recv_json(ws) == {"type": "ping"}
        assert 0.2 <= time.monotonic() - began < 1.5


async def test_duplicate_fault_sends_a_trade_frame_twice_and_malformed_sends_garbage() -> None:
    faults = FaultPlan(duplicate_prob=0.3, malformed_prob=0.3, seed=1)
    server = FinnhubFront(stock_market(["AAPL"], 400, seed=7), faults, token="t")
    async with server as front, websockets.connect(front.url_with_token()) as ws:
        await ws.send(json.dumps({"type": "subscribe", "symbol": "AAPL"}))
        raws: list[str | bytes] = []
        while len(raws) < 80:
            raws.append(await asyncio.wait_for(ws.recv(), 2))
        counts = front.fault_counts
    assert counts["duplicate"] > 0 and counts["malformed"] > 0
    assert any(a == b and '"trade"' in str(a) for a, b in itertools.pairwise(raws))
    bad = 0
    for raw in raws:
        try:
            json.loads(raw)
        except json.JSONDecodeError:
            bad += 1
    assert bad > 0


async def test_disconnect_fault_closes_clients() -> None:
    faults = FaultPlan(disconnect_every_s=0.3)
    server = FinnhubFront(stock_market(["AAPL"], 50, seed=8), faults, token="t")
    async with server as front, websockets.connect(front.url_with_token()) as ws:
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 2)
        assert front.fault_counts["disconnect"] >= 1


# -- market hours ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "is_open"),
    [
        ((2026, 12, 2, 9, 29, 59, 999999), False),  # a Wednesday, just before the open
        ((2026, 12, 2, 9, 30), True),  # the open is in
        ((2026, 12, 2, 15, 59, 59, 999999), True),
        ((2026, 12, 2, 16, 0), False),  # the close is out
        ((2026, 12, 5, 12, 0), False),  # Saturday
        ((2026, 12, 6, 12, 0), False),  # Sunday
        ((2026, 12, 7, 9, 30), True),  # Monday
        ((2026, 7, 1, 9, 30), True),  # summer time: 13:30 UTC
        ((2026, 7, 1, 9, 29), False),
    ],
)
def test_market_hours_boundaries(when: tuple[int, ...], is_open: bool) -> None:
    assert MarketHours().is_open(ny_us(*when)) is is_open


def test_market_hours_in_utc_follow_daylight_saving() -> None:
    hours = MarketHours()
    winter_open = int(datetime(2026, 12, 2, 14, 30, tzinfo=ZoneInfo("UTC")).timestamp() * 1e6)
    summer_open = int(datetime(2026, 7, 1, 13, 30, tzinfo=ZoneInfo("UTC")).timestamp() * 1e6)
    assert hours.is_open(winter_open) and not hours.is_open(winter_open - 1)
    assert hours.is_open(summer_open) and not hours.is_open(summer_open - 1)


def test_mask_agrees_with_is_open_across_the_open_and_close() -> None:
    hours = MarketHours()
    for edge in (ny_us(2026, 12, 2, 9, 30), ny_us(2026, 12, 2, 16, 0)):
        ts = np.arange(edge - 90_000_000, edge + 90_000_000, 7_777_777, dtype=np.int64)
        assert hours.mask(ts).tolist() == [hours.is_open(int(t)) for t in ts]
        short = np.array([edge - 1000, edge + 1000], dtype=np.int64)
        assert hours.mask(short).tolist() == [hours.is_open(int(t)) for t in short]


def test_hours_keep_no_trades_outside_the_session() -> None:
    start = ny_us(2026, 12, 2, 15, 59)  # a minute before the close, into the evening
    feed = FinnhubFeed(stock_market(["AAPL"], 50, seed=9, start_us=start), hours=MarketHours())
    sent = 0
    for step in range(1, 241):  # four minutes in polls of a second
        sent += sum(1 for f in feed.poll(start + step * 1_000_000) if f[2] is not None)
    truth = feed.ground_truth()
    assert truth and sent > 0
    close = ny_us(2026, 12, 2, 16, 0)
    assert all(t.ts_event < close for t in truth)  # none at or after 16:00
    assert max(t.ts_event for t in truth) > close - 5_000_000
    weekend = FinnhubFeed(
        stock_market(["AAPL"], 50, seed=9, start_us=ny_us(2026, 12, 5, 12, 0)), hours=MarketHours()
    )
    for step in range(1, 61):
        assert [f for f in weekend.poll(ny_us(2026, 12, 5, 12, 0) + step * 1_000_000) if f[2]] == []
    assert weekend.ground_truth() == []


def test_around_the_clock_by_default() -> None:
    start = ny_us(2026, 12, 5, 12, 0)  # a Saturday
    feed = FinnhubFeed(stock_market(["AAPL"], 50, seed=9, start_us=start))
    feed.poll(start + 10_000_000)
    assert len(feed.ground_truth()) > 100
