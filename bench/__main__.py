"""`python -m bench` (`make bench`): every scenario, printed as tables, saved as JSON + charts.

    python -m bench [--quick] [--trades N] [--rates 1000,10000,50000] [--only replay,live] ...

Scenarios: replay end to end vs PySpark, DuckDB and Polars on the same files (outputs checked
equal first); live latency at each rate; API load and WebSocket push (`bench/api.py`, when the
serving work has landed); cluster (`bench/cluster.py`, when it has landed); memory over a
compressed 24-hour session. Results: bench/results/latest.json and bench/results/*.png.
"""

import argparse
import importlib
import inspect
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.charts import write_charts
from bench.compare import compare, marketpipe_candles
from bench.dataset import CACHE, dataset
from bench.environment import machine, versions
from bench.isolated import run_isolated
from bench.live_bench import Mode, measure
from bench.memory_bench import memory_session
from bench.peers import duckdb_job, polars_job, spark_job
from bench.replay_bench import full_replay, stage_breakdown
from bench.report import RESULTS, headline, print_tables, write_json

MODES: dict[str, Mode] = {"same": "same_process", "separate": "separate_process"}
SCENARIOS = ("replay", "peers", "live", "api", "cluster", "memory")
HEADLINE_RATE = 10_000.0  # live.p50_ms / live.p99_ms are quoted at this rate
WORK = CACHE / "work"
ENV_KEYS = ("machine", "versions", "command", "scenario_seconds")


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="1M trades, short live and memory")
    parser.add_argument(
        "--trades",
        type=int,
        default=int(os.environ.get("BENCH_TRADES", 0)) or None,
        help="replay dataset size (default 10,000,000; --quick 1,000,000)",
    )
    parser.add_argument("--rates", default=None, help="live trades/s, comma separated")
    parser.add_argument("--live-seconds", type=float, default=None, help="measured s per rate")
    parser.add_argument("--warmup", type=float, default=2.0, help="discarded seconds per rate")
    parser.add_argument("--modes", default="separate", help="simulator: separate, same, or both")
    parser.add_argument("--memory-hours", type=float, default=None, help="event hours (24)")
    parser.add_argument("--stages", action="store_true", help="also parse-only / engine-only")
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"subset of {', '.join(SCENARIOS)}"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.trades = args.trades or (1_000_000 if quick else 10_000_000)
    args.rates = args.rates or ("1000,10000" if quick else "1000,10000,50000")
    args.live_seconds = args.live_seconds or (5.0 if quick else 10.0)
    args.memory_hours = args.memory_hours or (3.0 if quick else 24.0)
    return args


def _env(command: str, seconds: float) -> dict[str, Any]:
    return {
        "machine": machine(),
        "versions": versions(),
        "command": command,
        "scenario_seconds": round(seconds, 1),
    }


def _timed(name: str, fn: Callable[[], dict[str, Any]], command: str) -> dict[str, Any]:
    print(f"== {name}", flush=True)
    started = time.perf_counter()
    try:
        result = fn()
    except Exception as exc:  # one failed scenario must not lose the others
        print(f"{name}: failed: {exc!r}", flush=True)
        result = {"error": repr(exc)}
    return result | _env(command, time.perf_counter() - started)


# ---- replay and the peers ----------------------------------------------------------------


def bench_replay(args: argparse.Namespace, peers: bool) -> dict[str, Any]:
    data = dataset(args.trades)
    how = "cached" if data.cached else f"generated in {data.generate_seconds:.0f} s"
    print(f"replay: {data.trades:,} trades, {data.bytes / 1e9:.2f} GB ({how})", flush=True)
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    result = run_isolated(full_replay, data.paths, data.trades, WORK / "marketpipe")
    print(
        f"replay: marketpipe {result['trades_per_s']:,} trades/s "
        f"({result['seconds']:.1f} s, peak RSS {result['peak_rss_mb']:,.0f} MB)",
        flush=True,
    )
    result["data"] = data.describe()
    if args.stages:
        result["stages"] = run_isolated(stage_breakdown, data.paths)
    reference = marketpipe_candles(
        WORK / "marketpipe" / "warm.duckdb", WORK / "marketpipe-candles.parquet"
    )
    shutil.rmtree(WORK / "marketpipe", ignore_errors=True)  # ~GBs; candles are kept
    result["peers"] = _peers(data.paths, data.symbols, data.trades, reference) if peers else {}
    spark = result["peers"].get("pyspark", {})
    # The ratio is reported only for equal outputs: a faster wrong answer is no answer.
    equal = bool(spark.get("check", {}).get("equal"))
    result["pyspark_outputs_equal"] = equal
    result["pyspark_trades_per_s"] = spark.get("trades_per_s") if equal else None
    result["ratio_vs_pyspark"] = (
        round(result["trades_per_s"] / spark["trades_per_s"], 2) if equal else None
    )
    return result


PEERS = {"pyspark": (spark_job, ""), "duckdb": (duckdb_job, ".parquet"),
         "polars": (polars_job, ".parquet")}  # fmt: skip


def _peers(paths: list[Path], symbols: list[str], trades: int, reference: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (job, suffix) in PEERS.items():
        target = WORK / f"{name}-candles{suffix}"
        print(f"peers: {name} ...", flush=True)
        try:
            result = run_isolated(job, paths, symbols, target, trades)
            result["check"] = compare(reference, target)
        except Exception as exc:
            print(f"peers: {name} failed: {exc!r}", flush=True)
            out[name] = {"error": repr(exc)}
            continue
        verdict = "equal" if result["check"]["equal"] else "NOT EQUAL"
        print(
            f"peers: {name} {result['trades_per_s']:,} trades/s ({result['seconds']:.1f} s); "
            f"candles {verdict} to marketpipe's",
            flush=True,
        )
        out[name] = result
    return out


# ---- live --------------------------------------------------------------------------------


def bench_live(args: argparse.Namespace) -> dict[str, Any]:
    rates = [float(r) for r in args.rates.split(",") if r]
    modes = [MODES[m.strip()] for m in args.modes.split(",") if m.strip()]
    runs: list[dict[str, Any]] = []
    for rate in rates:
        for mode in modes:
            print(f"live: {rate:,.0f}/s, simulator {mode}, {args.warmup:g}+{args.live_seconds:g} s")
            try:
                run = run_isolated(measure, rate, mode, args.warmup, args.live_seconds)
            except Exception as exc:  # e.g. the watchdog: keep the other rates
                print(f"live: run failed: {exc!r}", flush=True)
                run = {"rate": rate, "mode": mode, "error": repr(exc), "samples": 0}
                run |= dict.fromkeys(("p50_ms", "p99_ms", "p999_ms", "max_ms"))
            runs.append(run)
    # Headline at 10k/s (the target's rate), simulator in its own process like a real exchange.
    head_rate = HEADLINE_RATE if HEADLINE_RATE in rates else max(rates)
    at_rate = [r for r in runs if r["rate"] == head_rate]
    head = next((r for r in at_rate if r["mode"] == "separate_process"), at_rate[0])
    return {
        "headline": f"{head['rate']:,.0f}/s, {head['mode']}",
        "stage": "frame sent by the simulated exchange -> trade and candle committed; "
        "frame sent -> WebSocket push received (provisional: before the commit)",
        "rate": head["rate"],
        "mode": head["mode"],
        "samples": head["samples"],
        "p50_ms": head["p50_ms"],
        "p99_ms": head["p99_ms"],
        "p999_ms": head["p999_ms"],
        "peak_rss_mb": head.get("peak_rss_mb"),
        # ... -> WebSocket push received by a client of the pipeline's own /ws API.
        "push_p50_ms": _ws(head, "frame_to_push", "p50_ms"),
        "push_p99_ms": _ws(head, "frame_to_push", "p99_ms"),
        "push_p999_ms": _ws(head, "frame_to_push", "p999_ms"),
        "commit_to_push_p99_ms": _ws(head, "commit_to_push", "p99_ms"),
        # Trades are pushed when folded, before their commit: the share that arrived first.
        "pushed_before_commit_share": head.get("ws", {}).get("pushed_before_commit_share"),
        "runs": runs,
        "data": {
            "symbols": head.get("symbols"),
            "warmup_s": args.warmup,
            "seconds_per_run": args.live_seconds,
        },
    }


def _ws(run: dict[str, Any], stage: str, key: str) -> Any:
    return run.get("ws", {}).get(stage, {}).get(key)


# ---- scenarios owned by other work: API + WebSocket push, cluster -------------------------


def _optional(module: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run `bench/<module>.py`'s `run()` if it exists; else say it was not measured.

    `run()` returns its sections (e.g. `{"api": {...}, "ws": {...}}`); it may accept `quick`.
    """
    try:
        mod = importlib.import_module(f"bench.{module}")
    except ModuleNotFoundError as exc:
        if exc.name != f"bench.{module}":
            raise
        reason = f"bench/{module}.py has not landed on this branch"
        return {module: {"measured": False, "reason": reason}}
    params = inspect.signature(mod.run).parameters
    result: dict[str, Any] = mod.run(quick=args.quick) if "quick" in params else mod.run()
    return {name: {"measured": True} | section for name, section in result.items()}


def main(argv: list[str] | None = None) -> None:
    args = _args(argv)
    command = shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)])
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"--only: unknown scenario(s) {', '.join(sorted(unknown))}")
    results: dict[str, Any] = {
        "created_unix": int(time.time()),
        "command": command,
        "quick": args.quick,
        "machine": machine(),
        "versions": versions(),
        "note": "2-core machines shared with other work are noisy; compare runs on one machine",
    }
    started = time.perf_counter()
    if "replay" in only or "peers" in only:
        results["replay"] = _timed(
            "replay", lambda: bench_replay(args, peers="peers" in only), command
        )
    if "live" in only:
        results["live"] = _timed("live", lambda: bench_live(args), command)
    for name in ("api", "cluster"):
        if name in only:
            sections = _timed(name, lambda name=name: _optional(name, args), command)
            env = {k: sections.pop(k) for k in ENV_KEYS if k in sections}
            if "error" in sections:  # the module failed: its section says so
                sections = {name: {"error": sections.pop("error")}}
            for section, values in sections.items():
                results[section] = values | env
    if "memory" in only:
        results["memory"] = _timed(
            "memory",
            lambda: run_isolated(memory_session, args.memory_hours),
            command,
        )
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results["headline"] = headline(results)
    charts = write_charts(results, RESULTS.parent)
    results["charts"] = [str(p.name) for p in charts]
    write_json(results)
    print_tables(results)


if __name__ == "__main__":
    main()
