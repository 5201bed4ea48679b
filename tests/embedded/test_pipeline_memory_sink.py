"""The pipeline depends on a sink, not on the embedded store: on the in-memory sink the
recorded trades give the reference candles, and a restart mid-stream resumes from what the
sink holds (positions and open windows) without a duplicate or a lost trade."""

from pathlib import Path

import pyarrow as pa

from harness.reference import assert_candles_match, raw_trades, reference_candles
from marketpipe.config import Settings
from marketpipe.embedded.pipeline import Pipeline
from marketpipe.sources.replay import ReplayReader
from marketpipe.storage.memory_sink import MemorySink


def _trades(files: list[Path]) -> pa.Table:
    return pa.concat_tables([chunk.trades for chunk in ReplayReader(files)])


def _candles(sink: MemorySink, interval: str) -> list:  # type: ignore[type-arg]
    return sink.candles("binance", "BTC-USDT", interval, None, None)


def test_pipeline_on_the_memory_sink_gives_the_reference_candles(
    settings: Settings, recorded_files: list[Path]
) -> None:
    sink = MemorySink()
    pipeline = Pipeline(settings, sink)
    trades = _trades(recorded_files)
    for offset in range(0, trades.num_rows, 5_000):
        pipeline.ingest(trades.slice(offset, 5_000))
    pipeline.flush()
    raw = raw_trades(recorded_files)

    assert len(sink.trade_map) == trades.num_rows == 19_904
    assert pipeline.totals.trades_stored == 19_904 and pipeline.totals.duplicates == 0
    minutes = _candles(sink, "1m")
    assert len(minutes) == 12
    assert_candles_match(minutes, reference_candles(raw))
    assert_candles_match(_candles(sink, "5m"), reference_candles(raw, 5))
    assert all(c.is_final for c in minutes)
    assert [p.trades_seen for p in sink.positions()] == [19_904]


def test_a_restart_on_the_same_sink_resumes_where_the_last_commit_left_off(
    settings: Settings, recorded_files: list[Path]
) -> None:
    sink = MemorySink()
    trades = _trades(recorded_files)
    half = trades.num_rows // 2
    first = Pipeline(settings, sink)
    first.ingest(trades.slice(0, half))  # then "crash": no flush, windows stay open
    assert not all(c.is_final for c in _candles(sink, "1m"))

    second = Pipeline(settings, sink)  # restored from the sink's positions and open windows
    assert second.engine.open_windows > 0
    second.ingest(trades.slice(half - 1_000))  # the source re-sends an overlap
    second.flush()

    assert second.totals.duplicates == 1_000
    assert len(sink.trade_map) == 19_904
    assert_candles_match(_candles(sink, "1m"), reference_candles(raw_trades(recorded_files)))


def test_each_commit_sets_the_last_trade_time_of_its_symbols(
    settings: Settings, recorded_files: list[Path]
) -> None:
    """last_trade_timestamp_seconds feeds the SymbolNoTrades alert (deploy/prometheus/rules)."""
    from marketpipe.observability.metrics import REGISTRY

    pipeline = Pipeline(settings, MemorySink())
    trades = _trades(recorded_files)
    first = trades.slice(0, 1_000)
    pipeline.ingest(first)
    labels = {"exchange": "binance", "symbol": "BTC-USDT"}
    newest = max(first.column("ts_event").to_pylist())
    newest_us = newest if isinstance(newest, int) else int(newest.timestamp() * 1_000_000)
    assert REGISTRY.get_sample_value("last_trade_timestamp_seconds", labels) == newest_us / 1e6
    pipeline.ingest(trades.slice(1_000))
    raw_newest = max(t[5] for t in raw_trades(recorded_files))  # trade time in ms
    assert REGISTRY.get_sample_value("last_trade_timestamp_seconds", labels) == raw_newest / 1e3
