"""API scenario of `make bench`: klines load and WebSocket push latency.

* `api.klines_rps`, `api.klines_p99_ms`: `GET /api/v3/klines?symbol=BTCUSDT&interval=1m&limit=500`
  from 64 concurrent keep-alive clients on loopback against a real `marketpipe serve`
  subprocess over a data dir holding 3,000 one-minute candles (served from the warm tier).
* `api.klines_share_of_trivial`: that rate over the rate of `GET /api/v3/ping` (a constant
  `{}`) from the same clients against the same server in the same run: what serving klines
  costs beyond the framework, the rate limiter and the client itself.
* `ws.push_p99_ms`: engine commit -> WebSocket client receipt of the `<sym>@trade` frames,
  with the pipeline and the API server in one process and the client in another (wall clock
  on both sides), trades fed at 1,000/s in 10 ms batches.
"""

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import uvicorn
from websockets.asyncio.client import connect

from marketpipe.bus.broadcast import CommitBroadcaster
from marketpipe.config import load_settings
from marketpipe.embedded.pipeline import Pipeline
from marketpipe.model.batch import CommitBatch
from marketpipe.model.records import Candle, Position, Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.serving.app import create_app
from marketpipe.serving.backend import embedded_backend
from marketpipe.serving.settings import ApiSettings
from marketpipe.storage.embedded import EmbeddedStore

MINUTE_US = 60_000_000
CANDLES = 3_000
CONCURRENCY = 64
KLINES_PATH = "/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=500"
TRIVIAL_PATH = "/api/v3/ping"  # answers {}: the server's floor per request
FAR_END_MS = 4_102_444_800_000  # 2100-01-01: after every stored candle


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def build_candles(data_dir: Path) -> None:
    """A data dir whose warm store holds CANDLES final 1m BTC-USDT candles."""
    start = (int(time.time()) // 60 - CANDLES) * MINUTE_US
    candles = [
        Candle(
            "binance", "BTC-USDT", "1m", start + i * MINUTE_US, start + (i + 1) * MINUTE_US,
            60000.0 + i, 60010.0 + i, 59990.0 + i, 60005.0 + i, 12.5, 750_000.0, 900, 6.1,
            366_000.0, 60001.0 + i, 1000 * i, 1000 * i + 899, True, 0,
        )
        for i in range(CANDLES)
    ]  # fmt: skip
    position = Position(
        "binance", "BTC-USDT", 1000 * CANDLES, start + CANDLES * MINUTE_US,
        [(0, 1000 * CANDLES)], 0, 0, 1000 * CANDLES, 0,
    )  # fmt: skip
    store = EmbeddedStore(data_dir)
    try:
        store.commit(CommitBatch(candles=candles, positions=[position]))
    finally:
        store.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _load(
    base: str, path: str, expected: bytes, seconds: float, warmup: float, *, vary: bool = False
) -> tuple[int, list[float], int, int]:
    """Requests/s, latencies (ms), errors and requests of `path` under CONCURRENCY clients; a
    response counts as an error unless it is 200 and starts with `expected`. `vary` gives each
    request its own `endTime` (past every candle: the same rows), so none is a reused one."""
    latencies: list[float] = []
    errors = 0
    total = 0
    measuring = False
    stop = False
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(base, connector=connector) as session:

        async def worker() -> None:
            nonlocal errors, total
            while not stop:
                t0 = time.perf_counter()
                url = f"{path}&endTime={FAR_END_MS + total}" if vary else path
                async with session.get(url) as response:
                    body = await response.read()
                if response.status != 200 or not body.startswith(expected):
                    errors += 1
                total += 1
                if measuring:
                    latencies.append((time.perf_counter() - t0) * 1000)

        tasks = [asyncio.create_task(worker()) for _ in range(CONCURRENCY)]
        await asyncio.sleep(warmup)
        measuring = True
        started = time.perf_counter()
        await asyncio.sleep(seconds)
        measuring = False
        elapsed = time.perf_counter() - started
        stop = True
        await asyncio.gather(*tasks, return_exceptions=True)
    return int(len(latencies) / elapsed), latencies, errors, total


def bench_klines(seconds: float = 10.0, warmup: float = 2.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="marketpipe-bench-api-") as tmp:
        data_dir = Path(tmp) / "data"
        build_candles(data_dir)
        port = _free_port()
        env = {**os.environ, "MARKETPIPE_API__RATE_LIMIT": "100000000/minute",
               "MARKETPIPE_LOG_LEVEL": "WARNING"}  # fmt: skip
        env.pop("MARKETPIPE_API__TOKEN", None)
        server = subprocess.Popen(
            [sys.executable, "-m", "marketpipe.cli", "serve", "--data-dir", str(data_dir),
             "--port", str(port)],
            cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_http(f"{base}/api/v1/system/health")
            cpu_before = _cpu_seconds(server.pid)
            load = _load(base, KLINES_PATH, b"[[", seconds, warmup)
            rps, latencies, errors, total = asyncio.run(load)
            server_cpu = _cpu_seconds(server.pid) - cpu_before
            trivial = asyncio.run(_load(base, TRIVIAL_PATH, b"{}", seconds, warmup))
            uncached = asyncio.run(_load(base, KLINES_PATH, b"[[", seconds, warmup, vary=True))
        finally:
            server.terminate()
            server.wait(10)
    return {
        "klines_rps": rps,
        "klines_p50_ms": round(statistics.median(latencies), 2),
        "klines_p99_ms": round(_percentile(latencies, 0.99), 2),
        "requests": len(latencies),
        # Requests per CPU-second of the server process: a figure that other load on the
        # machine disturbs far less than req/s (warmup included on both sides).
        "klines_per_server_cpu_s": round(total / server_cpu) if server_cpu else None,
        "errors": errors,
        "trivial_path": TRIVIAL_PATH,
        "trivial_rps": trivial[0],
        "trivial_p99_ms": round(_percentile(trivial[1], 0.99), 2),
        "trivial_errors": trivial[2],
        "klines_share_of_trivial": round(rps / trivial[0], 3) if trivial[0] else None,
        # Every request a different query: the cost when data changes between polls (live).
        "klines_uncached_rps": uncached[0],
        "klines_uncached_p99_ms": round(_percentile(uncached[1], 0.99), 2),
        "klines_uncached_errors": uncached[2],
        "klines_uncached_share_of_trivial": (
            round(uncached[0] / trivial[0], 3) if trivial[0] else None
        ),
        "concurrency": CONCURRENCY,
        "seconds": seconds,
        "path": KLINES_PATH,
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_http(url: str, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout:g} s")


# ---- WebSocket push latency ---------------------------------------------------------------


def bench_ws_push(seconds: float = 10.0, rate: float = 1000.0) -> dict[str, Any]:
    """Pipeline + API server here; the WebSocket client in its own process (as a real client
    is), both stamping the wall clock: commit finished -> frame received."""
    with tempfile.TemporaryDirectory(prefix="marketpipe-bench-ws-") as tmp:
        settings = load_settings(data_dir=Path(tmp) / "data", log_format="json")
        store = EmbeddedStore(settings.data_dir)
        broadcaster = CommitBroadcaster()
        committed: dict[int, int] = {}

        def on_commit(batch: CommitBatch, committed_ns: int) -> None:
            now = time.time_ns()
            broadcaster.publish(batch, committed_ns)
            for trade_id in batch.trades.column("trade_id").to_pylist():
                committed[trade_id] = now

        pipeline = Pipeline(settings, store, on_commit)
        app = create_app(
            embedded_backend(store, lambda: {"status": "ok"}, broadcaster),
            ApiSettings(rate_limit="100000000/minute"),
        )
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        client = None
        try:
            _wait_http(f"http://127.0.0.1:{port}/api/v1/system/health")
            client = subprocess.Popen(
                [sys.executable, "-m", "bench.api", "ws-client", str(port), str(seconds + 3)],
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert client.stdout is not None
            if client.stdout.readline().strip() != "ready":
                raise RuntimeError("the WebSocket client did not connect")
            time.sleep(0.3)  # its subscription is registered before the first commit
            _feed(pipeline, seconds, rate, threading.Event())
            received = json.loads(client.stdout.read())
        finally:
            if client is not None and client.poll() is None:
                client.kill()
            server.should_exit = True
            thread.join(10)
            store.close()
    warm_until = min(committed.values(), default=0) + 1_000_000_000  # skip the first second
    latencies = [
        (at - committed[tid]) / 1e6
        for tid, at in received
        if tid in committed and committed[tid] >= warm_until
    ]
    return {
        "push_p50_ms": round(statistics.median(latencies), 3),
        "push_p99_ms": round(_percentile(latencies, 0.99), 3),
        "samples": len(latencies),
        "rate_per_s": rate,
        "seconds": seconds,
        "stage": "engine commit finished -> trade frame received by a client in another process",
    }


def _feed(pipeline: Pipeline, seconds: float, rate: float, stop: threading.Event) -> None:
    """Trades for BTC-USDT at `rate`/s in 10 ms micro-batches, event time = now."""
    per_batch = max(1, int(rate / 100))
    trade_id = 1
    deadline = time.monotonic() + seconds
    next_at = time.monotonic()
    while time.monotonic() < deadline and not stop.is_set():
        now_us = time.time_ns() // 1000
        trades = [
            Trade("binance", "BTC-USDT", trade_id + i, 60000.0 + (i % 7), 0.01,
                  "buy" if i % 2 else "sell", now_us, now_us)
            for i in range(per_batch)
        ]  # fmt: skip
        trade_id += per_batch
        pipeline.ingest(to_table(trades, TRADE_SCHEMA))
        next_at += 0.01
        time.sleep(max(0.0, next_at - time.monotonic()))


async def _ws_client(port: int, seconds: float) -> list[tuple[int, int]]:
    """(trade id, wall-clock ns received) of every btcusdt@trade frame for `seconds`."""
    received: list[tuple[int, int]] = []
    async with connect(f"ws://127.0.0.1:{port}/ws/btcusdt@trade") as ws:
        print("ready", flush=True)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                text = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            at = time.time_ns()
            received.append((int(str(text).split('"t":', 1)[1].split(",", 1)[0]), at))
    return received


def run(quick: bool = False) -> dict[str, Any]:
    """Both measurements, as `{"api": {...}, "ws": {...}}` for bench/results/latest.json."""
    seconds = 4.0 if quick else 10.0
    print(f"api: klines limit=500, 64 concurrent clients, {seconds:g} s ...", flush=True)
    api = bench_klines(seconds)
    print(
        f"api: {api['klines_rps']:,} req/s, p50 {api['klines_p50_ms']} ms, "
        f"p99 {api['klines_p99_ms']} ms (targets: >= 3,000 req/s, p99 <= 20 ms); "
        f"{api['klines_per_server_cpu_s']} req per server CPU-second; {TRIVIAL_PATH} "
        f"{api['trivial_rps']:,} req/s, klines at {api['klines_share_of_trivial']} of it "
        f"(target >= 0.8); uncached klines {api['klines_uncached_rps']:,} req/s "
        f"({api['klines_uncached_share_of_trivial']} of ping)",
        flush=True,
    )
    print(f"ws: commit -> client push latency at 1,000 trades/s, {seconds:g} s ...", flush=True)
    ws = bench_ws_push(seconds)
    print(
        f"ws: push p50 {ws['push_p50_ms']} ms, p99 {ws['push_p99_ms']} ms "
        f"over {ws['samples']:,} frames (target: p99 <= 5 ms)",
        flush=True,
    )
    return {"api": api, "ws": ws}


if __name__ == "__main__":
    if sys.argv[1:2] == ["ws-client"]:
        port, seconds = int(sys.argv[2]), float(sys.argv[3])
        print(json.dumps(asyncio.run(_ws_client(port, seconds))), flush=True)
    else:
        run()
