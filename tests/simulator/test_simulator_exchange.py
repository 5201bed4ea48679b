"""The simulated exchange over real sockets: streams, methods, REST, limits and faults."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import msgspec
import pytest

from marketpipe.model.errors import FrameError
from marketpipe.model.records import Quote, Trade
from marketpipe.model.symbols import SymbolMap
from marketpipe.simulator import FaultPlan, SimulatedExchange, StreamRules, SyntheticMarket
from marketpipe.sources.binance.frames import Control, parse_frame

pytestmark = pytest.mark.integration

COMBINED = "/stream?streams=btcusdt@trade/ethusdt@trade/btcusdt@bookTicker"


@asynccontextmanager
async def exchange(
    faults: FaultPlan | None = None, tps: float = 2000, **kwargs: object
) -> AsyncIterator[SimulatedExchange]:
    market = SyntheticMarket(["BTCUSDT", "ETHUSDT"], tps, seed=21)
    ex = SimulatedExchange(market, faults, **kwargs)  # type: ignore[arg-type]
    await ex.start()
    try:
        yield ex
    finally:
        await ex.stop()


async def collect(
    ws: aiohttp.ClientWebSocketResponse, seconds: float, until: Callable[[str], bool] | None = None
) -> tuple[list[str], bool]:
    """Text frames for `seconds` (or until `until` matches); and whether the socket closed."""
    frames: list[str] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await ws.receive(timeout=left)
        except TimeoutError:
            break
        if msg.type == aiohttp.WSMsgType.TEXT:
            frames.append(msg.data)
            if until is not None and until(msg.data):
                break
        elif msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.ERROR,
        ):
            return frames, True
    return frames, False


def trades_of(frames: list[str]) -> tuple[list[Trade], int]:
    """Parsed trades, and how many frames did not parse."""
    symbols, trades, bad = SymbolMap(), [], 0
    for frame in frames:
        try:
            record = parse_frame(frame, symbols, 0)
        except FrameError:
            bad += 1
            continue
        if isinstance(record, Trade):
            trades.append(record)
    return trades, bad


async def test_combined_stream_frames_parse_and_match_ground_truth_and_history() -> None:
    async with (
        exchange(record_send_times=True) as ex,
        aiohttp.ClientSession() as http,
        http.ws_connect(ex.ws_url + COMBINED) as ws,
    ):
        frames, closed = await collect(ws, 1.0)
        assert not closed
        records = [parse_frame(f, SymbolMap(), 0) for f in frames]
        trades = [r for r in records if isinstance(r, Trade)]
        assert len(trades) > 1000 and any(isinstance(r, Quote) for r in records)
        assert {t.symbol for t in trades} == {"BTC-USDT", "ETH-USDT"}
        assert all(f.startswith('{"stream":"') for f in frames)
        truth = {(t.symbol, t.trade_id): t for t in ex.ground_truth()}
        for symbol in ("BTC-USDT", "ETH-USDT"):
            ids = [t.trade_id for t in trades if t.symbol == symbol]
            assert ids == list(range(ids[0], ids[0] + len(ids)))  # no faults: no gaps
        for t in trades:
            want = truth[(t.symbol, t.trade_id)]
            assert (t.price, t.qty, t.side, t.ts_event) == (
                want.price,
                want.qty,
                want.side,
                want.ts_event,
            )
        assert all((t.symbol, t.trade_id) in ex.sent_ns for t in trades)

        # historicalTrades paged from the first received id returns exactly the ground truth.
        first = next(t for t in trades if t.symbol == "BTC-USDT")
        paged: list[dict[str, object]] = []
        from_id = first.trade_id
        while True:
            async with http.get(
                ex.rest_url + "/api/v3/historicalTrades",
                params={"symbol": "BTCUSDT", "fromId": str(from_id), "limit": "1000"},
            ) as resp:
                assert resp.status == 200 and resp.headers["X-MBX-USED-WEIGHT-1M"]
                page = await resp.json()
            paged += page
            if len(page) < 1000:
                break
            from_id = int(page[-1]["id"]) + 1
        btc_truth = [t for t in ex.ground_truth() if t.symbol == "BTC-USDT"]
        btc_truth = [t for t in btc_truth if t.trade_id >= first.trade_id][: len(paged)]
        assert [p["id"] for p in paged] == [t.trade_id for t in btc_truth]
        assert [float(str(p["price"])) for p in paged] == [t.price for t in btc_truth]
        assert [float(str(p["qty"])) for p in paged] == [t.qty for t in btc_truth]
        assert [p["isBuyerMaker"] for p in paged] == [t.side == "sell" for t in btc_truth]
        assert set(paged[0]) == {
            "id",
            "price",
            "qty",
            "quoteQty",
            "time",
            "isBuyerMaker",
            "isBestMatch",
        }


async def test_rest_market_data_endpoints_answer_in_binance_shapes() -> None:
    async with exchange() as ex, aiohttp.ClientSession() as http:
        await asyncio.sleep(0.5)

        async def get(path: str, **params: str) -> tuple[int, object]:
            async with http.get(ex.rest_url + path, params=params) as resp:
                return resp.status, await resp.json()

        assert await get("/api/v3/ping") == (200, {})
        status, info = await get("/api/v3/exchangeInfo")
        assert status == 200 and isinstance(info, dict)
        btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
        assert (btc["baseAsset"], btc["quoteAsset"], btc["status"]) == ("BTC", "USDT", "TRADING")
        assert {f["filterType"] for f in btc["filters"]} >= {"PRICE_FILTER", "LOT_SIZE"}
        assert info["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT"
        assert await get("/api/v3/trades", symbol="NOPE") == (
            400,
            {"code": -1121, "msg": "Invalid symbol."},
        )
        status, body = await get("/api/v3/trades")
        assert status == 400 and isinstance(body, dict) and body["code"] == -1102

        status, depth = await get("/api/v3/depth", symbol="BTCUSDT", limit="10")
        assert isinstance(depth, dict) and len(depth["bids"]) == 10 and depth["lastUpdateId"] > 0
        assert float(depth["bids"][0][0]) < float(depth["asks"][0][0])

        _, trades = await get("/api/v3/trades", symbol="BTCUSDT", limit="1000")
        assert isinstance(trades, list) and len(trades) > 100
        first_id = trades[0]["id"]
        _, aggs = await get("/api/v3/aggTrades", symbol="BTCUSDT", startTime=str(trades[0]["time"]))
        assert isinstance(aggs, list) and set(aggs[0]) == {"a", "p", "q", "f", "l", "T", "m", "M"}
        ids = [i for a in aggs for i in range(a["f"], a["l"] + 1)]
        assert ids == list(range(ids[0], ids[0] + len(ids))) and ids[0] <= first_id
        _, again = await get(
            "/api/v3/aggTrades", symbol="BTCUSDT", fromId=str(aggs[3]["a"]), limit="2"
        )
        assert again == aggs[3:5]

        _, klines = await get("/api/v3/klines", symbol="BTCUSDT", interval="1s", limit="3")
        assert isinstance(klines, list) and 1 <= len(klines) <= 3 and len(klines[0]) == 12
        row = klines[0]
        assert row[6] == row[0] + 999 and float(row[2]) >= float(row[3]) and row[8] > 0
        assert (await get("/api/v3/klines", symbol="BTCUSDT", interval="7m"))[0] == 400


async def test_subscribe_list_and_unsubscribe_round_trip_on_a_raw_stream() -> None:
    async with (
        exchange() as ex,
        aiohttp.ClientSession() as http,
        http.ws_connect(ex.ws_url + "/ws") as ws,
    ):
        await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1})
        frames, _ = await collect(ws, 2.0, until=lambda f: '"id":1' in f)
        assert frames[-1] == '{"result":null,"id":1}'
        frames, _ = await collect(ws, 0.3)
        assert frames and all(f.startswith('{"e":"trade"') for f in frames)  # raw payloads
        await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 2})
        frames, _ = await collect(ws, 2.0, until=lambda f: '"id":2' in f)
        assert frames[-1] == '{"result":["btcusdt@trade"],"id":2}'
        await ws.send_json({"method": "UNSUBSCRIBE", "params": ["btcusdt@trade"], "id": 3})
        await collect(ws, 2.0, until=lambda f: '"id":3' in f)
        await asyncio.sleep(1.1)  # stay under 5 messages a second
        await ws.send_json({"method": "SUBSCRIBED", "params": [], "id": 4})
        frames, _ = await collect(ws, 2.0, until=lambda f: '"id":4' in f)
        error = msgspec.json.decode(frames[-1])
        assert error["id"] == 4 and error["error"]["code"] == 2
        assert "unknown variant" in error["error"]["msg"]
        assert isinstance(parse_frame(frames[-1], SymbolMap(), 0), Control)
        frames, _ = await collect(ws, 0.3)
        assert not [f for f in frames if f.startswith('{"e":"trade"')]  # unsubscribed


async def test_more_than_five_messages_a_second_gets_the_connection_closed() -> None:
    async with (
        exchange() as ex,
        aiohttp.ClientSession() as http,
        http.ws_connect(ex.ws_url + "/ws/btcusdt@trade") as ws,
    ):
        for i in range(8):
            await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": i})
        _, closed = await collect(ws, 3.0)
        assert closed


async def test_more_than_the_stream_limit_is_refused() -> None:
    rules = StreamRules(max_streams=3)
    async with (
        exchange(rules=rules) as ex,
        aiohttp.ClientSession() as http,
        http.ws_connect(ex.ws_url + "/stream?streams=a@trade/b@trade") as ws,
    ):
        await ws.send_json({"method": "SUBSCRIBE", "params": ["c@trade", "d@trade"], "id": 7})
        frames, _ = await collect(ws, 2.0, until=lambda f: '"id":7' in f)
        assert msgspec.json.decode(frames[-1])["error"]["code"] == 2


async def test_server_pings_and_closes_a_client_that_never_pongs() -> None:
    rules = StreamRules(ping_interval_s=0.2, pong_timeout_s=0.8)
    async with (
        exchange(rules=rules) as ex,
        aiohttp.ClientSession() as http,
        http.ws_connect(ex.ws_url + "/ws/btcusdt@trade", autoping=False) as ws,
    ):
        pings, start = 0, time.monotonic()
        while time.monotonic() - start < 5:
            msg = await ws.receive(timeout=5)
            if msg.type == aiohttp.WSMsgType.PING:
                pings += 1
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                break
        assert pings >= 2 and 0.7 < time.monotonic() - start < 4
        async with http.ws_connect(ex.ws_url + "/ws/btcusdt@trade") as ws:  # autoping pongs
            _, closed = await collect(ws, 1.5)
            assert not closed


async def test_dropped_duplicated_reordered_and_malformed_frames_all_happen() -> None:
    plan = FaultPlan(
        drop_prob=0.02, duplicate_prob=0.02, reorder_prob=0.02, malformed_prob=0.01, seed=3
    )
    async with (
        exchange(plan) as ex,
        aiohttp.ClientSession() as http,
        http.ws_connect(ex.ws_url + COMBINED) as ws,
    ):
        frames, _ = await collect(ws, 1.0)
    trades, bad = trades_of(frames)
    ids = [t.trade_id for t in trades if t.symbol == "BTC-USDT"]
    assert bad > 0  # malformed
    assert len(ids) != len(set(ids))  # duplicated
    assert any(b < a for a, b in itertools.pairwise(ids))  # reordered
    assert len(set(ids)) < max(ids) - min(ids) + 1  # dropped: a gap in the ids
    truth = {t.trade_id for t in ex.ground_truth() if t.symbol == "BTC-USDT"}
    assert set(ids) <= truth
    assert {"drop", "duplicate", "reorder", "malformed"} <= set(ex.fault_counts)


async def test_server_shutdown_event_is_sent_and_the_connection_closes_after() -> None:
    plan = FaultPlan(server_shutdown_every_s=0.3, server_shutdown_grace_s=0.5)
    async with (
        exchange(plan) as ex,
        aiohttp.ClientSession() as http,
        http.ws_connect(ex.ws_url + COMBINED) as ws,
    ):
        frames, closed = await collect(ws, 4.0)
    shutdowns = [f for f in frames if '"serverShutdown"' in f]
    assert shutdowns and closed
    event = parse_frame(shutdowns[0], SymbolMap(), 0)
    assert isinstance(event, Control) and event.kind == "server_shutdown"
    assert frames.index(shutdowns[0]) < len(frames) - 1 or len(frames) == 1


async def test_periodic_disconnect_and_stall_happen() -> None:
    async with (
        exchange(FaultPlan(disconnect_every_s=0.5)) as ex,
        aiohttp.ClientSession() as http,
        http.ws_connect(ex.ws_url + COMBINED) as ws,
    ):
        _, closed = await collect(ws, 3.0)
        assert closed
    plan = FaultPlan(stall_every_s=0.3, stall_s=1.0)
    async with (
        exchange(plan) as ex,
        aiohttp.ClientSession() as http,
        http.ws_connect(ex.ws_url + COMBINED) as ws,
    ):
        arrivals = []
        start = time.monotonic()
        while time.monotonic() - start < 2.0:
            try:
                await ws.receive(timeout=2.0)
            except TimeoutError:
                break
            arrivals.append(time.monotonic())
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        assert max(gaps) > 0.8  # silence for the stall, no close
        assert ex.fault_counts.get("stall", 0) >= 1


async def test_rest_faults_and_the_weight_limit_answer_429_then_418_with_retry_after() -> None:
    async with (
        exchange(FaultPlan(rest_429_prob=1.0, retry_after_s=7)) as ex,
        aiohttp.ClientSession() as http,
        http.get(ex.rest_url + "/api/v3/time") as resp,
    ):
        assert resp.status == 429 and resp.headers["Retry-After"] == "7"
        assert (await resp.json())["code"] == -1003
    async with exchange(rest_weight_limit=50) as ex, aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(4):
            async with http.get(
                ex.rest_url + "/api/v3/trades", params={"symbol": "BTCUSDT"}
            ) as resp:
                statuses.append(resp.status)
                if resp.status != 200:
                    assert int(resp.headers["Retry-After"]) >= 1
        assert statuses[:2] == [200, 200] and statuses[2] == 429 and statuses[3] == 418
    plan = FaultPlan(rest_delay_s=0.3)
    async with exchange(plan) as ex, aiohttp.ClientSession() as http:
        start = time.monotonic()
        async with http.get(ex.rest_url + "/api/v3/ping") as resp:
            assert resp.status == 200
        assert time.monotonic() - start >= 0.3
