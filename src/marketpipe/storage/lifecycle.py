"""Lifecycle: what runs daily over the tiers, the same in both modes.

1. **Archive** candles warm → lake: every UTC day that is final (its end is older than
   `final_after`, i.e. grace plus allowed lateness: no trade can revise it any more) and not
   archived yet is written to the lake (`candles/interval=…/…/date=…`), then recorded as done.
   Deterministic part names make a re-run after a crash rewrite the same files. Market
   snapshots go the same way (`market/source=…/asset=…/date=…`), per final day; a day is
   written again if it gained snapshots since (readers and compaction drop the duplicates).
2. **Retention**: the warm store keeps `warm_retention` (90 days by default; PostgreSQL drops
   whole day partitions of raw trades, DuckDB only deletes raw trades already exported to the
   lake), the hot tier keeps an hour.
3. **Compaction** of the lake's finished days: each partition's parts become one file,
   duplicates dropped, crash-safe (lake_compaction.py).
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import pyarrow as pa

from marketpipe.storage.lake import CANDLES, MARKET, TRADES, ParquetLake
from marketpipe.storage.lake_compaction import CompactionResult, compact
from marketpipe.storage.lifecycle_settings import LifecycleSettings

log = logging.getLogger(__name__)

DAY_US = 86_400_000_000


class LifecycleWarm(Protocol):
    """What lifecycle needs from a warm store (PostgresWarehouse, DuckDBLifecycle)."""

    def candle_days(self) -> list[int]: ...
    def candle_table(
        self, *, interval: str | None, start: int | None, end: int | None
    ) -> pa.Table: ...
    def archived_days(self) -> set[int]: ...
    def mark_archived(self, day_us: int, candles: int) -> None: ...
    def apply_retention(self, cutoff_us: int) -> dict[str, int]: ...
    def snapshot_days(self) -> dict[int, int]: ...
    def snapshot_table(self, *, start: int, end: int) -> pa.Table: ...
    def archived_snapshot_days(self) -> dict[int, int]: ...
    def mark_snapshots_archived(self, day_us: int, snapshots: int) -> None: ...


class LifecycleHot(Protocol):
    def apply_retention(self, now_us: int) -> dict[str, int]: ...


@dataclass(slots=True)
class LifecycleReport:
    now_us: int
    archived_days: list[str] = field(default_factory=list)
    archived_candles: int = 0
    archived_market_days: list[str] = field(default_factory=list)
    archived_snapshots: int = 0
    warm_removed: dict[str, int] = field(default_factory=dict)
    hot_removed: dict[str, int] = field(default_factory=dict)
    compaction: dict[str, CompactionResult] = field(default_factory=dict)


def run_cycle(
    warm: LifecycleWarm,
    lake: ParquetLake,
    hot: LifecycleHot | None,
    *,
    now_us: int,
    settings: LifecycleSettings,
    final_after_us: int,
) -> LifecycleReport:
    """One lifecycle run over open stores; safe to repeat and to resume after a crash."""
    report = LifecycleReport(now_us)
    if settings.archive_candles:
        archive_candles(warm, lake, now_us=now_us, final_after_us=final_after_us, report=report)
    if settings.archive_market:
        archive_market(warm, lake, now_us=now_us, final_after_us=final_after_us, report=report)
    cutoff = now_us - int(settings.warm_retention_days * DAY_US)
    report.warm_removed = warm.apply_retention(cutoff)
    if hot is not None:
        report.hot_removed = hot.apply_retention(now_us)
    if settings.compact:
        today = datetime.fromtimestamp(now_us / 1e6, UTC).date()
        for dataset in (TRADES, CANDLES, MARKET):
            report.compaction[dataset.name] = compact(
                lake, dataset, before=today, now_s=now_us / 1e6
            )
    log.info(
        "lifecycle run",
        extra={
            "archived_days": report.archived_days,
            "archived_market_days": report.archived_market_days,
            "warm_removed": report.warm_removed,
            "hot_removed": report.hot_removed,
            "compacted": {k: v.partitions for k, v in report.compaction.items()},
        },
    )
    return report


def archive_candles(
    warm: LifecycleWarm,
    lake: ParquetLake,
    *,
    now_us: int,
    final_after_us: int,
    report: LifecycleReport,
) -> None:
    done = warm.archived_days()
    for day in warm.candle_days():
        if day in done or day + DAY_US + final_after_us > now_us:
            continue
        candles = warm.candle_table(interval=None, start=day, end=day + DAY_US)
        lake.write_candles(candles)
        warm.mark_archived(day, candles.num_rows)
        report.archived_days.append(datetime.fromtimestamp(day / 1e6, UTC).date().isoformat())
        report.archived_candles += candles.num_rows


def archive_market(
    warm: LifecycleWarm,
    lake: ParquetLake,
    *,
    now_us: int,
    final_after_us: int,
    report: LifecycleReport,
) -> None:
    """Each final day of market snapshots not in the lake yet, or with more snapshots than
    when it was written (one polled late), to the lake, then recorded with its count."""
    done = warm.archived_snapshot_days()
    for day, count in sorted(warm.snapshot_days().items()):
        if done.get(day) == count or day + DAY_US + final_after_us > now_us:
            continue
        snapshots = warm.snapshot_table(start=day, end=day + DAY_US)
        lake.write_market(snapshots)
        warm.mark_snapshots_archived(day, snapshots.num_rows)
        iso = datetime.fromtimestamp(day / 1e6, UTC).date().isoformat()
        report.archived_market_days.append(iso)
        report.archived_snapshots += snapshots.num_rows
