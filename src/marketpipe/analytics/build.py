"""One dbt invocation for the current mode, with its inputs prepared and its output published.

Embedded (duckdb target): snapshot the warm store to Parquet, copy the last marts file to a
temporary name (incremental models continue from it), run dbt on the copy, and rename it over
`{data_dir}/analytics.duckdb` only if dbt succeeded. Cluster (postgres target): run dbt against
the cluster warm store directly.
"""

import asyncio
import contextlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import duckdb

from marketpipe.analytics.runner import (
    DbtError,
    DbtResult,
    dbt_command,
    dbt_environment,
    run_dbt,
    work_dir,
)
from marketpipe.analytics.settings import DbtSettings
from marketpipe.analytics.snapshot import snapshot_warm
from marketpipe.storage.embedded import MARTS_FILE, DataDir, EmbeddedStore

log = logging.getLogger(__name__)

# Commands whose result becomes the served marts; the others (test, docs) work on a copy.
PUBLISHING = frozenset({"build", "run"})
# How far back incremental models re-derive. Passed to dbt as `lookback_hours` on every
# embedded run, so the warm snapshot always covers what the models re-read.
LOOKBACK_HOURS = 3


async def run_for_mode(
    settings: DbtSettings,
    command: str,
    args: list[str],
    *,
    data_dir: Path,
    store: EmbeddedStore | None = None,
) -> DbtResult:
    """Run `dbt COMMAND ARGS`; raises DbtError if dbt cannot start or times out."""
    try:
        if settings.target == "postgres":
            return await _run_postgres(settings, command, args, data_dir)
        if store is None:
            raise DbtError("the duckdb target needs the embedded store to snapshot")
        return await _run_embedded(settings, command, args, data_dir, store)
    except TimeoutError:
        raise DbtError(f"dbt {command} did not finish within {settings.timeout_s:g} s") from None
    except OSError as exc:
        raise DbtError(f"dbt {command} could not run: {exc}") from None


async def _run_postgres(
    settings: DbtSettings, command: str, args: list[str], data_dir: Path
) -> DbtResult:
    work = work_dir(data_dir)
    env = dbt_environment(settings, duckdb_path=None, work=work)
    return await run_dbt(settings, dbt_command(settings, command, args, {}), env, work)


async def _run_embedded(
    settings: DbtSettings, command: str, args: list[str], data_dir: Path, store: EmbeddedStore
) -> DbtResult:
    work = work_dir(data_dir)
    live = DataDir(data_dir).marts
    since = None
    if command in PUBLISHING and "--full-refresh" not in args:
        since = await asyncio.to_thread(_incremental_trades_since, live)
    snapshot = await asyncio.to_thread(snapshot_warm, store, work / "inputs", since)
    log.info("warm snapshot for dbt written in %.2f s", snapshot.seconds)
    building = work / "build" / MARTS_FILE
    await asyncio.to_thread(_fresh_copy, live, building)
    variables: dict[str, Any] = {
        "inputs_dir": str(snapshot.directory),
        "lake_trades_glob": snapshot.lake_trades_glob,
        "warm_trades_since_us": snapshot.warm_trades_since_us,
        "lookback_hours": LOOKBACK_HOURS,
    }
    env = dbt_environment(settings, duckdb_path=building, work=work)
    try:
        result = await run_dbt(settings, dbt_command(settings, command, args, variables), env, work)
        if result.ok and command in PUBLISHING:
            os.replace(building, live)  # atomic: readers see the old or the new file
            log.info("marts published to %s", live)
        return result
    finally:
        for leftover in (building, building.with_name(building.name + ".wal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _incremental_trades_since(live: Path) -> int | None:
    """The oldest trade time an incremental build of the published marts re-reads: its newest
    hour minus the project's lookback, with an hour to spare. None: no marts yet (full build)."""
    if not live.is_file():
        return None
    try:
        con = duckdb.connect(str(live), read_only=True)
    except duckdb.Error:
        return None
    try:
        newest = con.execute(
            "SELECT epoch_us(max(hour_start)) FROM intermediate.int_trades_bucketed_to_hours"
        ).fetchall()[0][0]
    except duckdb.Error:
        return None
    finally:
        con.close()
    if newest is None:
        return None
    return int(newest) - (LOOKBACK_HOURS + 1) * 3_600_000_000


def _fresh_copy(live: Path, building: Path) -> None:
    building.parent.mkdir(parents=True, exist_ok=True)
    for stale in (building, building.with_name(building.name + ".wal")):
        stale.unlink(missing_ok=True)
    if live.is_file():
        shutil.copyfile(live, building)
