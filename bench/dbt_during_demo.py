"""Scenario: the scheduled dbt build during a live demo. Does the pipeline stall while dbt runs?

The demo's pipeline (real connector against the in-process simulated exchange) runs with the
scheduler building the dbt marts every `--every` seconds. Candle commit latency (frame sent ->
the commit storing the trade and its candle upserts has returned) is split into commits that
happened while a dbt build was running and commits outside any build (after warm-up).

    .venv/bin/python -m bench.dbt_during_demo [--rate 200] [--seconds 300] [--first 60]

Writes bench/results/dbt_during_demo.json. Timing on a shared machine is noisy.
"""

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.latency import CommitLog, summarize
from marketpipe.config import load_settings
from marketpipe.embedded.demo import point_at
from marketpipe.embedded.live import LiveRun
from marketpipe.simulator import SimulatedExchange, SyntheticMarket

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"]
RESULTS = Path(__file__).parent / "results" / "dbt_during_demo.json"


async def _run(
    rate: float, seconds: float, every: float, first: float, warmup: float, data_dir: Path
) -> Any:
    settings = load_settings(
        data_dir=data_dir,
        symbols=SYMBOLS,
        api={"port": 0},
        scheduler={"dbt_first_build_after_s": first, "dbt_build_every_s": every},
    )
    log = CommitLog()
    windows: list[tuple[int, int]] = []
    ready_ns: list[int] = []

    async def watch(live: LiveRun) -> None:
        assert live.scheduler is not None
        job = live.scheduler.jobs["dbt_build"]
        started: int | None = None
        while True:
            running = job.running_since is not None
            if running and started is None:
                started = time.perf_counter_ns()
            elif not running and started is not None:
                windows.append((started, time.perf_counter_ns()))
                started = None
            await asyncio.sleep(0.02)

    def ready(live: LiveRun) -> None:
        ready_ns.append(time.perf_counter_ns())
        asyncio.get_running_loop().create_task(watch(live))

    market = SyntheticMarket(SYMBOLS, rate, 7)
    async with SimulatedExchange(market, record_send_times=True) as exchange:
        live = LiveRun(point_at(settings, exchange), on_commit=log)
        await live.run(seconds, ready)
        sent = dict(exchange.sent_ns)
    assert live.scheduler is not None
    job = live.scheduler.jobs["dbt_build"].status()
    return log, sent, windows, ready_ns[0] + int(warmup * 1e9), job


def measure(
    rate: float, seconds: float, every: float, first: float, warmup: float = 5.0
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="marketpipe-bench-dbt-") as tmp:
        log, sent, windows, since, job = asyncio.run(
            _run(rate, seconds, every, first, warmup, Path(tmp) / "data")
        )
    during: list[float] = []
    outside: list[float] = []
    for done_ns, symbols, ids in log.commits:
        in_build = any(a <= done_ns <= b for a, b in windows)
        for key in zip(symbols, ids, strict=True):
            sent_ns = sent.get(key)
            if sent_ns is None or sent_ns < since or done_ns < sent_ns:
                continue
            (during if in_build else outside).append((done_ns - sent_ns) / 1e6)
    return {
        "rate": rate,
        "seconds": seconds,
        "dbt_every_s": every,
        "dbt_first_after_s": first,
        "dbt_builds_finished": len(windows),
        "dbt_build_seconds": [round((b - a) / 1e9, 1) for a, b in windows],
        "dbt_job": {k: job[k] for k in ("runs", "failures", "last_status", "last_error")},
        "during_dbt": summarize(np.asarray(during)),
        "outside_dbt": summarize(np.asarray(outside)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="trades/s, all symbols")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--first", type=float, default=60.0, help="first dbt build after, s")
    parser.add_argument("--every", type=float, default=600.0, help="dbt build interval, s")
    args = parser.parse_args()
    result = measure(args.rate, args.seconds, args.every, args.first)
    during, outside = result["during_dbt"], result["outside_dbt"]
    if during["p99_ms"] and outside["p99_ms"]:
        result["p99_ratio"] = round(during["p99_ms"] / outside["p99_ms"], 2)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
