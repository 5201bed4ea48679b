"""Replay: recorded files through the pipeline into the data dir, as fast or as paced as asked."""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from marketpipe.config import Settings
from marketpipe.embedded.pipeline import CommitHook, Pipeline, Totals
from marketpipe.embedded.stores import open_store
from marketpipe.model.records import DeadLetter, Quote
from marketpipe.model.schemas import TRADE_SCHEMA
from marketpipe.observability import metrics as m
from marketpipe.sources.replay import ReplayReader, read_ahead


@dataclass(slots=True)
class ReplaySummary(Totals):
    files: int = 0
    trades_read: int = 0
    skipped_frames: int = 0
    lake_trades: int = 0
    seconds: float = 0.0
    # One line per input that broke part way (what was read before the break is committed).
    broken: list[str] = field(default_factory=list)
    first_dead_letter: str | None = None  # "file:line: why", for the user to look at
    venues: set[str] = field(default_factory=set)  # the venues of the trades read

    @property
    def trades_per_s(self) -> float:
        return self.trades_read / self.seconds if self.seconds else 0.0


def replay(
    settings: Settings,
    paths: list[Path],
    *,
    speed: float | None = None,
    progress: Callable[[int], None] | None = None,
    on_commit: CommitHook | None = None,
    venue: str | None = None,
) -> ReplaySummary:
    """Replay files through the pipeline; end of input finalizes every window.

    `venue` names every file's venue (`--venue`); None lets each file say which it is. Each
    venue's frames go through its own parser, with its settings section of `settings`.
    """
    reader = ReplayReader(paths, venue=venue, venue_settings=settings.venue_settings)
    summary = ReplaySummary(files=len(paths))
    started = time.perf_counter()
    store = open_store(settings)
    try:
        pipeline = Pipeline(settings, store, on_commit)
        slice_size = (
            settings.engine.batch_max_trades
            if speed is None
            else min(1000, settings.engine.batch_max_trades)
        )
        pacer = _Pacer(speed)
        for chunk in read_ahead(reader):
            summary.trades_read += chunk.trades.num_rows
            if chunk.trades.num_rows:
                summary.venues.update(pc.unique(chunk.trades.column("exchange")).to_pylist())
            summary.skipped_frames += chunk.skipped
            if chunk.broken is not None:
                summary.broken.append(chunk.broken)
            elif chunk.dead_letters and summary.first_dead_letter is None:
                first = chunk.dead_letters[0]
                summary.first_dead_letter = f"{first.context}: {first.error}"
            m.DEAD_LETTERS.labels("replay").inc(len(chunk.dead_letters))
            extras: tuple[list[Quote], list[DeadLetter]] = (chunk.quotes, chunk.dead_letters)
            for part in _slices(chunk.trades, slice_size):
                pacer.wait_for(part)
                pipeline.ingest(part, *extras)
                extras = ([], [])
            if extras[0] or extras[1]:
                pipeline.ingest(TRADE_SCHEMA.empty_table(), *extras)
            if progress is not None:
                progress(chunk.bytes_read)
        if not summary.broken:  # a broken input has not ended: its windows stay open, as
            pipeline.flush()  # after a crash, so replaying the repaired file completes them
        store.export_to_lake()
        summary.lake_trades = store.exported_trades
        for name in Totals.__dataclass_fields__:
            setattr(summary, name, getattr(pipeline.totals, name))
    finally:
        store.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _slices(table: pa.Table, size: int) -> Iterator[pa.Table]:
    for offset in range(0, max(table.num_rows, 1), size):
        part = table.slice(offset, size)
        if part.num_rows:
            yield part


class _Pacer:
    """Paces replay to `speed` times event time (None: as fast as possible)."""

    def __init__(self, speed: float | None) -> None:
        self.speed = speed
        self._origin: tuple[int, float] | None = None

    def wait_for(self, trades: pa.Table) -> None:
        if self.speed is None or not trades.num_rows:
            return
        first_event = trades.column("ts_event")[0].value
        if self._origin is None:
            self._origin = (first_event, time.perf_counter())
            return
        event0, wall0 = self._origin
        due = wall0 + (first_event - event0) / 1e6 / self.speed
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
