"""Printing the results as a table and writing them to `bench/results/latest.json`."""

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results" / "latest.json"
REPLAY_TARGET_TPS = 1_000_000
LIVE_TARGET_P99_MS = 5.0


def write_json(results: dict[str, Any], path: Path = RESULTS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    return path


def _verdict(ok: bool) -> str:
    return "[green]meets target[/]" if ok else "[red]below target[/]"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def print_tables(results: dict[str, Any], console: Console | None = None) -> None:
    # Wide enough for the tables when output is piped (make, CI logs), not a terminal.
    console = console or Console(width=max(Console().width, 140))
    env = results["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in results["versions"].items())
    console.print(
        f"[bold]marketpipe bench[/]  {env['cpu_count']} CPUs, {env['platform']}, "
        f"Python {env['python']}\n{versions}"
    )
    replay = results.get("replay")
    if replay:
        data = replay["data"]
        table = Table(
            title=f"Replay, end to end with full persistence ({data['trades']:,} trades "
            f"generated, {data['symbols']} symbols, {data['bytes'] / 1e6:,.0f} MB)"
        )
        for col in ("stage", "seconds", "trades/s", "note"):
            table.add_column(col, justify="left" if col in ("stage", "note") else "right")
        ok = replay["trades_per_s"] >= REPLAY_TARGET_TPS
        stored, generated = replay["stored_trade_rows"], replay["data"]["trades"]
        correct = (
            "stored = generated"
            if replay["correct"]
            else f"[red]stored {stored:,} of {generated:,}[/]"
        )
        table.add_row(
            "[bold]replay() total[/]", f"{replay['seconds']:.2f}", f"{replay['trades_per_s']:,}",
            f"{_verdict(ok)} (≥ {REPLAY_TARGET_TPS:,}/s); {correct}; "
            f"{replay['dead_letters']} dead letters; peak RSS {replay['peak_rss_mb']:,.0f} MB",
        )  # fmt: skip
        stages = replay.get("stages")
        if stages:
            table.add_row(
                "  parse only (ReplayReader)",
                f"{stages['parse_seconds']:.2f}",
                f"{stages['parse_trades_per_s']:,}",
                "separate run",
            )
            table.add_row(
                "  engine only (CandleEngine)",
                f"{stages['engine_seconds']:.2f}",
                f"{stages['engine_trades_per_s']:,}",
                "separate run, no storage",
            )
        commit_tps = (
            round(replay["trades"] / replay["commit_seconds"]) if replay["commit_seconds"] else 0
        )
        table.add_row(
            "  commit (DuckDB + hot + lake)", f"{replay['commit_seconds']:.2f}", f"{commit_tps:,}",
            f"inside the total run, {replay['batches']} batches",
        )  # fmt: skip
        console.print(table)
    live = results.get("live")
    if live:
        table = Table(
            title="Live latency: frame sent by the simulated exchange -> trade + candle committed"
        )
        for col in (
            "rate/s",
            "simulator",
            "samples",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "verdict",
        ):
            table.add_column(col, justify="left" if col in ("simulator", "verdict") else "right")
        for run in live["runs"]:
            ok = run["p99_ms"] is not None and run["p99_ms"] <= LIVE_TARGET_P99_MS
            table.add_row(
                f"{run['rate']:,.0f}", run["mode"].replace("_", " "), f"{run['samples']:,}",
                _ms(run["p50_ms"]), _ms(run["p99_ms"]), _ms(run["p999_ms"]), _ms(run["max_ms"]),
                f"{_verdict(ok)} (p99 ≤ {LIVE_TARGET_P99_MS:g} ms)",
            )  # fmt: skip
        console.print(table)
        console.print(
            "[dim]same process: simulator and pipeline share one process, event loop and GIL; "
            "separate process: simulator in a child process (perf_counter_ns is CLOCK_MONOTONIC, "
            f"comparable across processes). Headline live.* = {live['headline']}.[/]"
        )
    console.print(f"[dim]written to {RESULTS}[/]")
