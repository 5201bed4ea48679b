"""Scenario 2: live latency, simulated exchange -> connector -> engine -> DuckDB commit.

Latency is frame sent (simulator writer, just before `send_frame`) -> the commit that stores
the trade and its candle upserts (one transaction) has returned; and frame sent -> the trade's
WebSocket push received by a client of the pipeline's own `/ws` API. Trades are pushed when
the engine has folded their batch, before its commit (provisional): the client asks for the
`provisional` mark and the run reports how many pushes came before their commit.
Two topologies:
- `same_process`: simulator and pipeline share one process and one event loop (and GIL);
- `separate_process`: the simulator runs in a child process, like a real exchange would.
"""

import asyncio
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
from websockets.asyncio.client import connect

from bench.environment import peak_rss_mb
from bench.latency import (
    CommitLog,
    SendTimes,
    latencies_ms,
    measured_keys,
    push_latencies_ms,
    summarize,
)
from marketpipe.config import DEFAULT_SYMBOLS, Settings, load_settings
from marketpipe.embedded.demo import point_at
from marketpipe.embedded.live import LiveRun
from marketpipe.model.symbols import normalize
from marketpipe.simulator import SimulatedExchange, SyntheticMarket

Mode = Literal["same_process", "separate_process"]
PushTimes = dict[tuple[str, int], int]  # (symbol, trade id) -> perf_counter_ns received
Marked = set[tuple[str, int]]  # the pushes marked provisional (sent before their commit)
SYMBOLS: list[str] = list(DEFAULT_SYMBOLS)
SEED = 7
STOP_GRACE_S = 60.0  # start-up plus shutdown (final lake export) allowance
HISTOGRAM_SAMPLES = 5_000  # latencies kept per run for the chart


def _settings(data_dir: Path) -> Settings:
    return load_settings(data_dir=data_dir, symbols=SYMBOLS, api={"port": 0})


def _with_endpoints(settings: Settings, ws_url: str, rest_url: str) -> Settings:
    binance = settings.binance.model_copy(update={"ws_url": ws_url, "rest_url": rest_url})
    return settings.model_copy(update={"binance": binance})


async def _ws_client(port: int, received: PushTimes, marked: Marked) -> None:
    """A Binance-style client of the pipeline's own API: `/ws/<sym>@trade/...` (raw payloads,
    with our `provisional` mark); notes when each trade's frame arrives."""
    streams = "/".join(f"{s.replace('-', '').lower()}@trade" for s in SYMBOLS)
    decoder = msgspec.json.Decoder(_PushedTrade)
    url = f"ws://127.0.0.1:{port}/ws/{streams}?provisional=true"
    async with connect(url, max_size=None) as ws:
        async for message in ws:
            now = time.perf_counter_ns()
            trade = decoder.decode(message)
            key = (normalize(trade.s), trade.t)
            received[key] = now
            if trade.provisional:
                marked.add(key)


class _PushedTrade(msgspec.Struct):
    s: str
    t: int
    provisional: bool = False  # a server without provisional pushes sends no mark


async def _run_pipeline(
    settings: Settings,
    log: CommitLog,
    warmup_s: float,
    seconds: float,
    pushed: PushTimes,
    marked: Marked,
    watchdog: list[bool],
) -> int:
    """Run the live pipeline with a WebSocket client; returns perf_counter_ns at warm-up end."""
    ready_ns: list[int] = []
    clients: list[asyncio.Task[None]] = []

    def ready(live: LiveRun) -> None:
        ready_ns.append(time.perf_counter_ns())
        assert live.api_port is not None
        client = _ws_client(live.api_port, pushed, marked)
        clients.append(asyncio.get_running_loop().create_task(client))

    live = LiveRun(settings, on_commit=log)
    run = live.run(warmup_s + seconds, ready=ready)
    # A watchdog: a pipeline that cannot stop (e.g. it fell far behind at a high rate) is
    # cancelled, and what it committed until then is still measured.
    try:
        await asyncio.wait_for(run, warmup_s + seconds + STOP_GRACE_S)
    except TimeoutError:
        watchdog.append(True)
    finally:
        for client in clients:
            client.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
    return ready_ns[0] + int(warmup_s * 1e9)


async def _same_process(
    rate: float,
    warmup_s: float,
    seconds: float,
    data_dir: Path,
    pushed: PushTimes,
    marked: Marked,
    watchdog: list[bool],
) -> tuple[CommitLog, SendTimes, int]:
    exchange = SimulatedExchange(SyntheticMarket(SYMBOLS, rate, SEED), record_send_times=True)
    await exchange.start()
    log = CommitLog()
    try:
        settings = point_at(_settings(data_dir), exchange)
        since = await _run_pipeline(settings, log, warmup_s, seconds, pushed, marked, watchdog)
    finally:
        await exchange.stop()
    return log, exchange.sent_ns, since


def _separate_process(
    rate: float,
    warmup_s: float,
    seconds: float,
    data_dir: Path,
    pushed: PushTimes,
    marked: Marked,
    watchdog: list[bool],
) -> tuple[CommitLog, SendTimes, int]:
    out = data_dir.parent / "sent_ns.pickle"
    argv = [
        sys.executable,
        "-m",
        "bench.simulator_child",
        str(rate),
        str(SEED),
        ",".join(SYMBOLS),
        str(out),
    ]
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    log = CommitLog()
    try:
        ws_url, rest_url = child.stdout.readline().split()
        settings = _with_endpoints(_settings(data_dir), ws_url, rest_url)
        since = asyncio.run(
            _run_pipeline(settings, log, warmup_s, seconds, pushed, marked, watchdog)
        )
    finally:
        child.stdin.close()  # tells the child to stop and write its send times
        child.wait(timeout=60)
    sent: SendTimes = pickle.loads(out.read_bytes())
    return log, sent, since


def measure(
    rate: float, mode: Mode, warmup_s: float = 2.0, seconds: float = 15.0
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="marketpipe-bench-live-") as tmp:
        data_dir = Path(tmp) / "data"
        pushed: PushTimes = {}
        marked: Marked = set()
        watchdog: list[bool] = []
        if mode == "same_process":
            log, sent, since = asyncio.run(
                _same_process(rate, warmup_s, seconds, data_dir, pushed, marked, watchdog)
            )
        else:
            log, sent, since = _separate_process(
                rate, warmup_s, seconds, data_dir, pushed, marked, watchdog
            )
    ms, skipped = latencies_ms(log, sent, since)
    to_push, commit_to_push = push_latencies_ms(log, sent, pushed, since)
    measured = set(measured_keys(log, sent, pushed, since))
    committed = sum(len(ids) for _, _, ids in log.commits)
    step = max(1, ms.size // HISTOGRAM_SAMPLES)  # an even thinning keeps the distribution
    return {
        "rate": rate,
        "mode": mode,
        "warmup_s": warmup_s,
        "seconds": seconds,
        "symbols": len(SYMBOLS),
        "frames_sent": len(sent),
        "trades_committed": committed,
        "commits": len(log.commits),
        "measured_trades_per_s": round(ms.size / seconds),
        "skipped": skipped,
        # Fell behind so far that it could not stop within the grace: latencies are of what
        # it committed; the rest of what was sent never was.
        "stopped_by_watchdog": bool(watchdog),
        "sent_not_committed": max(0, len(sent) - committed),
        "peak_rss_mb": peak_rss_mb(),  # the pipeline's process (the simulator is apart)
        **summarize(ms),
        "sample_ms": ms[::step].round(3).tolist(),
        # The WebSocket stage: a client of the pipeline's own /ws API, in the pipeline's process.
        "ws": {
            "frame_to_push": summarize(to_push),
            # Negative: the push arrived before the commit had returned (provisional).
            "commit_to_push": summarize(commit_to_push),
            "pushed_before_commit_share": _share(commit_to_push < 0),
            "marked_provisional_share": _share(
                np.asarray([key in marked for key in measured], dtype=bool)
            ),
            "sample_ms": to_push[:: max(1, to_push.size // HISTOGRAM_SAMPLES)].round(3).tolist(),
        },
    }


def _share(flags: np.ndarray) -> float | None:
    return round(float(flags.mean()), 4) if flags.size else None
