"""Live WebSocket pushes during a demo run (simulated exchange -> connector -> engine ->
broadcaster, provisionally at the fold and durably after the commit -> our Binance-compatible
streams -> a real WebSocket client)."""

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from marketpipe.config import load_settings
from marketpipe.embedded.demo import demo
from marketpipe.embedded.live import LiveRun
from marketpipe.model.batch import CommitBatch

pytestmark = pytest.mark.integration


async def _start_demo(
    tmp_path: Path, committed: dict[int, int]
) -> tuple[asyncio.Task[LiveRun], LiveRun]:
    settings = load_settings(
        data_dir=tmp_path / "data", symbols="BTCUSDT,ETHUSDT", log_format="json"
    )
    settings.api.port = 0
    ready: asyncio.Future[LiveRun] = asyncio.get_running_loop().create_future()

    def on_ready(live: LiveRun) -> None:
        def record(batch: CommitBatch, committed_ns: int) -> None:
            for trade_id in batch.trades.column("trade_id").to_pylist():
                committed[trade_id] = committed_ns

        live.on_commit = record
        ready.set_result(live)

    task = asyncio.create_task(
        demo(settings, duration_s=150, trades_per_second=100, ready=on_ready)
    )
    live = await asyncio.wait_for(ready, 60)
    return task, live


async def test_kline_and_trade_pushes_follow_the_engine_commits(tmp_path: Path) -> None:
    committed: dict[int, int] = {}
    task, live = await _start_demo(tmp_path, committed)
    url = f"ws://127.0.0.1:{live.api_port}/stream?streams=btcusdt@kline_1m/btcusdt@trade"
    received_at: dict[int, int] = {}
    provisional: list[dict[str, Any]] = []
    final: list[dict[str, Any]] = []
    trades: list[dict[str, Any]] = []
    try:
        async with connect(url) as ws:
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
            deadline = time.monotonic() + 100  # a 1m window must close: up to ~65 s
            listed = None
            while time.monotonic() < deadline and not (final and len(trades) > 50):
                message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                received = time.perf_counter_ns()
                if message.get("id") == 1:
                    listed = message["result"]
                    continue
                stream, data = message["stream"], message["data"]
                if stream == "btcusdt@trade":
                    assert data["e"] == "trade" and data["s"] == "BTCUSDT"
                    trades.append(data)
                    received_at[data["t"]] = received
                elif stream == "btcusdt@kline_1m":
                    assert data["e"] == "kline" and data["k"]["i"] == "1m"
                    (final if data["k"]["x"] else provisional).append(data)
        # While live, the newest candles come from the hot tier (memory).
        async with httpx.AsyncClient() as http:
            response = await http.get(
                f"http://127.0.0.1:{live.api_port}/api/v1/analytics/klines/BTCUSDT",
                params={"interval": "1m", "limit": 2},
            )
        assert response.status_code == 200
        assert response.headers["X-Marketpipe-Tiers"] == "hot"
        newest = response.json()["candles"][-1]
        assert newest["open_time"].endswith(":00Z") and newest["trade_count"] > 0
    finally:
        live.stop()
        await asyncio.wait_for(task, 60)
    assert listed == ["btcusdt@kline_1m", "btcusdt@trade"]
    assert provisional and final, "expected provisional (x=false) and final (x=true) klines"
    closed = final[0]["k"]
    assert closed["T"] == closed["t"] + 59_999
    # The final kline is the last word on its window: every provisional one before it for the
    # same window had at most as many trades.
    same_window = [p["k"]["n"] for p in provisional if p["k"]["t"] == closed["t"]]
    assert all(n <= closed["n"] for n in same_window)
    ids = [t["t"] for t in trades]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # Negative: the trade was pushed when folded, before its commit returned.
    latencies_ms = [(at - committed[t]) / 1e6 for t, at in received_at.items() if t in committed]
    assert latencies_ms, "no pushed trade could be matched to its commit"
    median = statistics.median(latencies_ms)
    print(f"commit -> client push: median {median:.2f} ms, max {max(latencies_ms):.2f} ms")
    # Pushes come from the pipeline itself, not from polling: well under a poll period even
    # on a busy shared machine (bench/api.py measures the real distribution).
    assert median < 250


async def test_subscribe_unsubscribe_and_bad_requests_on_the_raw_endpoint(tmp_path: Path) -> None:
    task, live = await _start_demo(tmp_path, {})
    try:
        async with connect(f"ws://127.0.0.1:{live.api_port}/ws") as ws:

            async def ask(request: dict[str, Any]) -> dict[str, Any]:
                await ws.send(json.dumps(request))
                while True:
                    reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    if "id" in reply or "error" in reply:
                        return reply

            assert await ask(
                {"method": "SUBSCRIBE", "params": ["ethusdt@trade", "ethusdt@bookTicker"], "id": 7}
            ) == {"result": None, "id": 7}
            # Raw endpoint: payloads arrive bare, not wrapped.
            seen: set[str] = set()
            while not {"trade", "book"} <= seen:
                data = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if data.get("e") == "trade":
                    assert data["s"] == "ETHUSDT"
                    seen.add("trade")
                elif "u" in data and "b" in data:
                    assert float(data["b"]) <= float(data["a"])
                    seen.add("book")
            assert await ask({"method": "UNSUBSCRIBE", "params": ["ethusdt@trade"], "id": 8}) == {
                "result": None, "id": 8,
            }  # fmt: skip
            assert await ask({"method": "LIST_SUBSCRIPTIONS", "id": 9}) == {
                "result": ["ethusdt@bookTicker"], "id": 9,
            }  # fmt: skip
            bad = await ask({"method": "SUBSCRIBE", "params": ["nonsense"], "id": 10})
            assert bad["error"]["code"] == 2 and bad["id"] == 10
            assert bad["error"]["msg"].startswith("Invalid request: invalid stream 'nonsense'")
            await ws.send("{not json")
            while "error" not in (reply := json.loads(await asyncio.wait_for(ws.recv(), 30))):
                pass
            assert reply["error"] == {
                "code": 3,
                "msg": "Invalid JSON: expecting property name enclosed in double quotes "
                "at line 1 column 2",
            }
    finally:
        live.stop()
        await asyncio.wait_for(task, 60)
