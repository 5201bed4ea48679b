"""The results as tables on the terminal and as `bench/results/latest.json`."""

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results" / "latest.json"

# The targets, quoted next to each measured number.
TARGETS = {
    "replay.trades_per_s": (">=", 1_000_000),
    "replay.ratio_vs_pyspark": (">=", 10),
    "live.p99_ms": ("<=", 50.0),  # frame -> durably committed, default durability
    "live.push_p99_ms": ("<=", 5.0),  # frame -> WebSocket push received
    "api.klines_rps": (">=", 3_000),
    "api.klines_share_of_trivial": (">=", 0.8),
    "api.klines_p99_ms": ("<=", 20.0),
    "ws.push_p99_ms": ("<=", 5.0),
    "memory.rss_mb_20_symbols": ("<=", 300),
}


def _get(results: dict[str, Any], dotted: str) -> Any:
    node: Any = results
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


HEADLINE_KEYS = (
    "replay.trades_per_s", "replay.pyspark_trades_per_s", "replay.ratio_vs_pyspark",
    "replay.peak_rss_mb", "live.p50_ms", "live.p99_ms", "live.push_p99_ms", "api.klines_rps",
    "api.klines_p99_ms", "api.klines_share_of_trivial", "ws.push_p99_ms",
    "memory.rss_mb_20_symbols",
)  # fmt: skip


def headline(results: dict[str, Any]) -> dict[str, Any]:
    """The keys runs are compared by, flat (`null` where a scenario was not measured)."""
    return {key: _get(results, key) for key in HEADLINE_KEYS}


def write_json(results: dict[str, Any], path: Path = RESULTS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value >= 1000:
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _verdict(key: str, value: Any) -> str:
    if key not in TARGETS:
        return ""
    op, target = TARGETS[key]
    if value is None:
        return f"[yellow]not measured[/] ({op} {target:,})"
    ok = value >= target if op == ">=" else value <= target
    mark = "[green]meets[/]" if ok else "[red]misses[/]"
    return f"{mark} ({op} {target:,})"


def print_tables(results: dict[str, Any], console: Console | None = None) -> None:
    # Wide enough for the tables when output is piped (make, CI logs), not a terminal.
    console = console or Console(width=max(Console().width, 140))
    env = results["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in results["versions"].items())
    console.print(
        f"[bold]marketpipe bench[/]  {env['cpu_count']} CPUs, {env['platform']}, "
        f"Python {env['python']}; {versions}; {results['total_seconds']:.0f} s in total"
    )
    _headline_table(console, results)
    _replay_table(console, results.get("replay"))
    _live_table(console, results.get("live"))
    memory = results.get("memory")
    if memory and "rss_mb_end" in memory:
        console.print(
            f"memory: {memory['symbols']} symbols, {memory['event_hours']:g} event hours "
            f"({memory['trades']:,} trades) in {memory['wall_seconds']:.0f} s wall: RSS "
            f"{memory['rss_mb_start']:.0f} MB at start, {memory['rss_mb_at_2h']:.0f} MB after "
            f"warm-up, {memory['rss_mb_end']:.0f} MB at the end, max {memory['rss_mb_max']:.0f}"
            f" MB; slope {memory['slope_mb_per_event_hour_after_2h']:+.1f} MB per event hour"
            + (
                f"; DuckDB holds {memory['duckdb_mb_end']:.0f} MB at the end (limit "
                f"{memory['warm_memory_limit_mb']} MB)"
                if "duckdb_mb_end" in memory
                else ""
            )
        )
    console.print(f"[dim]{results.get('note', '')}. Written to {RESULTS}[/]")


def _headline_table(console: Console, results: dict[str, Any]) -> None:
    table = Table(title="Headline (the keys of latest.json runs are compared by)")
    for col in ("key", "value", "target"):
        table.add_column(col, justify="right" if col == "value" else "left")
    for key, value in results["headline"].items():
        table.add_row(key, _fmt(value), _verdict(key, value))
    console.print(table)


def _replay_table(console: Console, replay: dict[str, Any] | None) -> None:
    if not replay or "trades_per_s" not in replay:
        return
    data = replay["data"]
    table = Table(
        title=f"Replay of the same files: {data['trades']:,} trades, {len(data['symbols'])} "
        f"symbols, {data['bytes'] / 1e9:.2f} GB of Binance frames"
    )
    for col in ("engine", "work", "seconds", "trades/s", "peak RSS MB", "candles vs marketpipe"):
        table.add_column(col, justify="left" if col in ("engine", "work") else "right")
    stored = "all stored once" if replay["correct"] else "[red]stored count differs[/]"
    table.add_row(
        "[bold]marketpipe replay[/]",
        "parse, dedup, candles + rollups, alerts, DuckDB + lake + hot",
        f"{replay['seconds']:.1f}",
        f"{replay['trades_per_s']:,}",
        _fmt(replay["peak_rss_mb"]),
        stored,
    )
    for name, peer in replay.get("peers", {}).items():
        if "error" in peer:
            table.add_row(name, "[red]failed[/]", "-", "-", "-", peer["error"][:60])
            continue
        check = peer["check"]
        verdict = (
            f"equal ({check['candles']:,} candles)"
            if check["equal"]
            else f"[red]NOT equal[/] {check['mismatched_fields']}"
        )
        work = "parse, dedup, candles + rollups -> Parquet"
        if name == "pyspark":
            work += f" (local[*]; +{peer['startup_seconds']:.0f} s JVM start, not counted)"
        rss = peer.get("peak_rss_mb", peer.get("peak_rss_mb_driver"))
        table.add_row(
            name, work, f"{peer['seconds']:.1f}", f"{peer['trades_per_s']:,}", _fmt(rss), verdict
        )
    console.print(table)


def _live_table(console: Console, live: dict[str, Any] | None) -> None:
    if not live or "runs" not in live:
        return
    table = Table(title=f"Live latency: {live['stage']}")
    for col in ("rate/s", "simulator", "samples", "p50 ms", "p99 ms", "p99.9 ms", "max ms",
                "push p50 ms", "push p99 ms", "push p99.9 ms", "peak RSS MB"):  # fmt: skip
        table.add_column(col, justify="left" if col == "simulator" else "right")
    for run in live["runs"]:
        table.add_row(
            f"{run['rate']:,.0f}", run["mode"].replace("_", " "), f"{run['samples']:,}",
            _fmt(run["p50_ms"]), _fmt(run["p99_ms"]), _fmt(run["p999_ms"]), _fmt(run["max_ms"]),
            *(_fmt(run.get("ws", {}).get("frame_to_push", {}).get(k))
              for k in ("p50_ms", "p99_ms", "p999_ms")),
            _fmt(run.get("peak_rss_mb")),
        )  # fmt: skip
    console.print(table)
