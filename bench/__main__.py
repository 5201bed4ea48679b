"""`python -m bench` (`make bench`): replay throughput and live latency, printed and saved.

    python -m bench [--replay-trades N] [--rates 10000,1000] [--live-seconds 15] ...

`BENCH_REPLAY_TRADES` sets the default replay size.
"""

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import cluster
from bench.environment import machine, versions
from bench.isolated import run_isolated
from bench.live_bench import Mode, measure
from bench.recording import write_recording
from bench.replay_bench import full_replay, stage_breakdown
from bench.report import print_tables, write_json

MODES: dict[str, Mode] = {"same": "same_process", "separate": "separate_process"}


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--replay-trades", type=int, default=int(os.environ.get("BENCH_REPLAY_TRADES", 2_000_000))
    )
    parser.add_argument(
        "--no-stages", action="store_true", help="skip the parse-only / engine-only runs"
    )
    parser.add_argument(
        "--rates", default="10000,1000", help="live trade rates per second, comma separated"
    )
    parser.add_argument(
        "--live-seconds", type=float, default=15.0, help="measured seconds per live run"
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="discarded seconds before measuring"
    )
    parser.add_argument(
        "--modes", default="separate,same", help="simulator placement: separate, same, or both"
    )
    parser.add_argument("--skip-replay", action="store_true")
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument("--skip-cluster", action="store_true", help="skip bench/cluster.py")
    return parser.parse_args(argv)


def _scenario_env(command: str) -> dict[str, Any]:
    return {"machine": machine(), "versions": versions(), "command": command}


def bench_replay(trades: int, stages: bool, command: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="marketpipe-bench-rec-") as tmp:
        print(f"replay: generating {trades:,} trades ...", flush=True)
        rec = write_recording(Path(tmp) / "trades.recv", trades)
        print(
            f"replay: {rec.bytes / 1e6:,.0f} MB in {rec.generate_s:.1f} s (untimed); replaying ...",
            flush=True,
        )
        result = run_isolated(full_replay, rec.path, rec.trades)
        if stages:
            print("replay: per-stage runs ...", flush=True)
            result["stages"] = run_isolated(stage_breakdown, rec.path)
    result["data"] = {
        "trades": rec.trades, "symbols": rec.symbols, "bytes": rec.bytes, "format": "recv (plain)",
        "event_rate_per_s": rec.event_rate, "generate_seconds": round(rec.generate_s, 2),
    }  # fmt: skip
    return result | _scenario_env(command)


def bench_live(
    rates: list[float], modes: list[Mode], seconds: float, warmup: float, command: str
) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for rate in rates:
        for mode in modes:
            print(
                f"live: {rate:,.0f}/s, simulator {mode}, {warmup:g}+{seconds:g} s ...",
                flush=True,
            )
            try:
                runs.append(run_isolated(measure, rate, mode, warmup, seconds))
            except Exception as exc:  # one failed run (e.g. the watchdog) must not lose the rest
                print(f"live: run failed: {exc!r}", flush=True)
                runs.append(
                    {"rate": rate, "mode": mode, "error": repr(exc), "samples": 0}
                    | dict.fromkeys(("p50_ms", "p99_ms", "p999_ms", "max_ms"))
                )
    # Headline: the highest rate, preferring the simulator in its own process (closest to a
    # real, remote exchange).
    top = max(rates)
    at_top = [r for r in runs if r["rate"] == top]
    head = next((r for r in at_top if r["mode"] == "separate_process"), at_top[0])
    return {
        "headline": f"{head['rate']:,.0f}/s, {head['mode']}",
        "rate": head["rate"],
        "mode": head["mode"],
        "samples": head["samples"],
        "p50_ms": head["p50_ms"],
        "p99_ms": head["p99_ms"],
        "p999_ms": head["p999_ms"],
        "runs": runs,
        "data": {"symbols": head["symbols"], "warmup_s": warmup, "seconds_per_run": seconds},
    } | _scenario_env(command)


def main(argv: list[str] | None = None) -> None:
    args = _args(argv)
    command = shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)])
    results: dict[str, Any] = {
        "created_unix": int(time.time()),
        "command": command,
        "machine": machine(),
        "versions": versions(),
    }
    started = time.perf_counter()
    if not args.skip_replay:
        results["replay"] = bench_replay(args.replay_trades, not args.no_stages, command)
    if not args.skip_live:
        rates = [float(r) for r in args.rates.split(",") if r]
        modes = [MODES[m.strip()] for m in args.modes.split(",") if m.strip()]
        results["live"] = bench_live(rates, modes, args.live_seconds, args.warmup, command)
    if not args.skip_cluster:  # Kafka + PostgreSQL + Spark: see bench/cluster.py
        results["cluster"] = cluster.main([])
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    write_json(results)
    print_tables(results)


if __name__ == "__main__":
    main()
