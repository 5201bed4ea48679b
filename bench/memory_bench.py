"""Scenario: memory of 20 live symbols over a 24-hour session, compressed in wall time.

A real 24 h session at 10x speed takes 2.4 h of wall time; this one replays the same event
time as fast as the pipeline goes. A synthetic market for 20 symbols generates 24 h of trades
on its event-time clock; each step hands one `step_s` slice of trades (plus the latest quote
per symbol) to the live pipeline core — the same `Pipeline` object `marketpipe run` feeds:
candle engine, alert rules, DuckDB warm store, hot tier and Parquet lake exports — then
advances the idle watermark to the event clock, as the live loop does with the wall clock.
RSS is sampled from /proc every `sample_every_min` event minutes.

What it measures: whether state that should be bounded (open windows, the hot tier's last
hour, id ledgers, alert history, DuckDB's buffers) stays bounded as event time advances.
What it does not: the WebSocket connector, bus and API server, whose state does not grow with
event time (the live scenario reports their peak RSS at 10k trades/s).
"""

import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from marketpipe.config import load_settings
from marketpipe.embedded.pipeline import Pipeline
from marketpipe.embedded.stores import open_store
from marketpipe.model.symbols import DEFAULT_SYMBOLS
from marketpipe.simulator import SyntheticMarket

START_US = 1_723_161_600_000_000  # 2024-08-09 00:00 UTC
SEED = 11


def rss_mb() -> float:
    """Current resident set size of this process (VmRSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def duckdb_mb(con: duckdb.DuckDBPyConnection) -> float:
    """What DuckDB says it holds (block cache, indexes, transactions), in MB; closes `con`."""
    try:
        used = con.sql("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchall()[0][0]
    finally:
        con.close()
    return round(int(used or 0) / 1e6, 1)


def memory_session(
    hours: float = 24.0,
    trades_per_s: float = 50.0,
    step_s: float = 60.0,
    sample_every_min: float = 15.0,
) -> dict[str, Any]:
    symbols = list(DEFAULT_SYMBOLS)
    samples: list[tuple[float, float]] = []  # (event hours, RSS MB)
    duckdb_samples: list[float] = []  # DuckDB's own accounting at each sample, MB
    trades = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="marketpipe-bench-mem-") as tmp:
        settings = load_settings(data_dir=Path(tmp) / "data", symbols=symbols)
        store = open_store(settings)
        try:
            pipeline = Pipeline(settings, store)
            market = SyntheticMarket(symbols, trades_per_s, SEED, start_us=START_US)
            lag_us = int(settings.engine.idle_lag_s * 1e6)
            step_us = int(step_s * 1e6)
            steps = int(hours * 3600 / step_s)
            sample_every = max(1, int(sample_every_min * 60 / step_s))
            samples.append((0.0, rss_mb()))
            for step in range(1, steps + 1):
                clock = START_US + step * step_us
                columns = market.advance_columns(clock)
                recv = columns.ts_us + 1_000  # received 1 ms after the trade
                quotes = [market.quote(s) for s in symbols]
                pipeline.ingest(columns.to_arrow(recv), quotes)
                pipeline.advance_idle(clock, lag_us)
                trades += len(columns)
                if step % sample_every == 0:
                    samples.append((round(step * step_s / 3600, 3), rss_mb()))
                    duckdb_samples.append(duckdb_mb(store.warm.reader()))
            open_windows = pipeline.engine.open_windows
        finally:
            store.close()
    hours_axis = np.array([h for h, _ in samples])
    rss = np.array([r for _, r in samples])
    settled = hours_axis >= min(2.0, hours / 2)  # after the hot tier and 1h windows fill up
    slope = float(np.polyfit(hours_axis[settled], rss[settled], 1)[0]) if settled.sum() > 2 else 0.0
    steady = rss[settled] if settled.any() else rss
    return {
        "event_hours": hours,
        "symbols": len(symbols),
        "trades": trades,
        "trades_per_s_event": trades_per_s,
        "step_event_s": step_s,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "rss_mb_start": float(rss[0]),
        "rss_mb_at_2h": float(steady[0]),
        "rss_mb_end": float(rss[-1]),
        "rss_mb_max": float(rss.max()),
        "rss_mb_20_symbols": float(steady.max()),
        "slope_mb_per_event_hour_after_2h": round(slope, 2),
        "open_windows_end": open_windows,
        # The warm store's block cache grows with the table up to storage.warm_memory_mb;
        # RSS minus this is what the rest of the process holds.
        "warm_memory_limit_mb": settings.storage.warm_memory_mb,
        "duckdb_mb_end": duckdb_samples[-1] if duckdb_samples else 0.0,
        "duckdb_mb_max": max(duckdb_samples, default=0.0),
        "samples": [[h, r] for h, r in samples],
    }
