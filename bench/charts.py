"""PNG charts of a bench run: replay throughput bars, live latency histograms, memory over time."""

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on CI machines

import matplotlib.pyplot as plt
import numpy as np


def write_charts(results: dict[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, draw in (
        ("replay_throughput.png", _throughput),
        ("live_latency.png", _latency),
        ("memory_rss.png", _memory),
        ("api_latency.png", _api),
    ):
        fig = draw(results)
        if fig is None:
            continue
        path = directory / name
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def _throughput(results: dict[str, Any]) -> Any:
    replay = results.get("replay") or {}
    if "trades_per_s" not in replay:
        return None
    names = ["marketpipe\n(end to end)"]
    values = [replay["trades_per_s"]]
    colors = ["tab:blue"]
    for name, peer in replay.get("peers", {}).items():
        if "trades_per_s" in peer:
            equal = peer["check"]["equal"]
            names.append(f"{name}\n({'equal' if equal else 'NOT equal'})")
            values.append(peer["trades_per_s"])
            colors.append("tab:gray" if equal else "tab:red")
    fig, ax = plt.subplots(figsize=(8, 3.8))
    bars = ax.barh(names[::-1], values[::-1], color=colors[::-1])
    ax.bar_label(bars, labels=[f"{v:,.0f}/s" for v in values[::-1]], padding=4)
    ax.axvline(1_000_000, color="tab:green", linestyle="--", linewidth=1)
    ax.text(1_000_000, len(values) - 0.5, " target 1M/s", color="tab:green", va="center")
    ax.set_xlabel("trades per second (higher is better)")
    trades = replay["data"]["trades"]
    ax.set_title(f"Replay of the same {trades / 1e6:g}M Binance trade frames, 20 symbols")
    ax.set_xlim(0, max([*values, 1_000_000]) * 1.3)
    return fig


def _latency(results: dict[str, Any]) -> Any:
    runs = [r for r in (results.get("live") or {}).get("runs", []) if r.get("sample_ms")]
    if not runs:
        return None
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.4), squeeze=False)
    for ax, run in zip(axes[0], runs, strict=True):
        ms = np.asarray(run["sample_ms"])
        push = np.asarray(run.get("ws", {}).get("sample_ms") or [])
        both = np.concatenate([ms, push])
        bins = np.logspace(np.log10(max(both.min(), 0.1)), np.log10(both.max() * 1.05), 50)
        ax.hist(ms, bins=bins, color="tab:blue", alpha=0.7, label="-> committed")
        if push.size:
            ax.hist(push, bins=bins, color="tab:orange", alpha=0.5, label="-> WebSocket push")
        ax.set_xscale("log")
        for q, style in (("p50_ms", ":"), ("p99_ms", "--"), ("p999_ms", "-.")):
            if run.get(q) is not None:
                ax.axvline(run[q], color="black", linestyle=style, linewidth=1, label=f"{q[:-3]} "
                           f"{run[q]:,.1f} ms")  # fmt: skip
        ax.axvline(5.0, color="tab:green", linewidth=1, label="target p99 5 ms")
        ax.set_title(f"{run['rate']:,.0f} trades/s ({run['samples']:,} trades)")
        ax.set_xlabel("ms after the frame was sent (log)")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("trades")
    fig.suptitle("Live latency, simulated exchange in its own process")
    fig.tight_layout()
    return fig


def _memory(results: dict[str, Any]) -> Any:
    memory = results.get("memory") or {}
    if not memory.get("samples"):
        return None
    hours, rss = zip(*memory["samples"], strict=True)
    fig, ax = plt.subplots(figsize=(8, 3.4))
    ax.plot(hours, rss, marker=".", color="tab:blue")
    ax.axhline(300, color="tab:green", linestyle="--", linewidth=1, label="target 300 MB")
    ax.set_xlabel("event time (hours of the synthetic session)")
    ax.set_ylabel("RSS (MB)")
    ax.set_ylim(0, max([*rss, 300]) * 1.15)
    ax.set_title(
        f"Memory: {memory['symbols']} symbols, {memory['event_hours']:g} h session at max speed "
        f"({memory['trades']:,} trades)"
    )
    ax.legend()
    return fig


def _api(results: dict[str, Any]) -> Any:
    """Drawn from bench/api.py's `histograms` ({name: [ms, ...]}) when it provides them."""
    api = results.get("api") or {}
    histograms: dict[str, list[float]] = api.get("histograms") or {}
    if not histograms:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.4))
    for name, values in histograms.items():
        ax.hist(values, bins=50, alpha=0.6, label=name)
    ax.set_xlabel("latency (ms)")
    ax.legend()
    ax.set_title("API latency under load")
    return fig
