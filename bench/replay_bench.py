"""Scenario: replay the dataset end to end, with full persistence, as fast as it goes.

Each function runs in its own interpreter (see `isolated`), so peak RSS belongs to it alone.
The data dir is kept in `work`, so the candles can be compared with the peers' afterwards.
"""

import shutil
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from bench.environment import peak_rss_mb
from marketpipe.config import load_settings
from marketpipe.embedded.replay import replay
from marketpipe.observability import metrics as m
from marketpipe.processing.alerts import AlertRules
from marketpipe.processing.engine import CandleEngine
from marketpipe.sources.replay import ReplayReader
from marketpipe.storage.embedded import EmbeddedStore


def full_replay(paths: list[Path], expected_trades: int, data_dir: Path) -> dict[str, Any]:
    """`marketpipe.embedded.replay.replay` into an empty data dir: DuckDB, lake, candles, alerts."""
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = load_settings(data_dir=data_dir)
    started = time.perf_counter()
    summary = replay(settings, paths)
    seconds = time.perf_counter() - started
    rss = peak_rss_mb()
    # Cheap correctness check: every generated trade is stored, once.
    store = EmbeddedStore(data_dir, read_only=True)
    try:
        counts = store.warm.counts()
    finally:
        store.close()
    commit_s = m.REGISTRY.get_sample_value("batch_commit_seconds_sum") or 0.0
    batches = m.REGISTRY.get_sample_value("batch_commit_seconds_count") or 0.0
    return {
        "trades": summary.trades_read,
        "seconds": round(seconds, 3),
        "trades_per_s": round(summary.trades_read / seconds),
        "peak_rss_mb": rss,
        "trades_stored": summary.trades_stored,
        "stored_trade_rows": counts.get("trades_recent", 0),
        "lake_trades": summary.lake_trades,
        "candles_written": summary.candles,
        "candle_rows": counts.get("candles", 0),
        "alerts": summary.alerts,
        "duplicates": summary.duplicates,
        "late_trades": summary.late,
        "dead_letters": summary.dead_letters,
        "batches": int(batches),
        "commit_seconds": round(commit_s, 3),
        "correct": counts.get("trades_recent") == expected_trades == summary.trades_stored,
        "data_dir": str(data_dir),
    }


def stage_breakdown(paths: list[Path]) -> dict[str, Any]:
    """Parse alone, then the candle engine alone on the parsed trades (no storage)."""
    settings = load_settings()
    started = time.perf_counter()
    tables: list[pa.Table] = []
    for chunk in ReplayReader(paths):
        tables.append(chunk.trades)
    parse_s = time.perf_counter() - started
    trades = sum(t.num_rows for t in tables)

    engine_settings = settings.engine
    engine = CandleEngine(
        AlertRules(settings.alerts),
        grace_us=int(engine_settings.grace_s * 1e6),
        allowed_lateness_us=int(engine_settings.allowed_lateness_s * 1e6),
    )
    size = engine_settings.batch_max_trades  # the slices `replay` feeds the pipeline
    started = time.perf_counter()
    for table in tables:
        for offset in range(0, table.num_rows, size):
            engine.process(table.slice(offset, size))
    engine.flush()
    engine_s = time.perf_counter() - started
    return {
        "trades": trades,
        "parse_seconds": round(parse_s, 3),
        "parse_trades_per_s": round(trades / parse_s) if parse_s else 0,
        "engine_seconds": round(engine_s, 3),
        "engine_trades_per_s": round(trades / engine_s) if engine_s else 0,
        "peak_rss_mb": peak_rss_mb(),
    }
