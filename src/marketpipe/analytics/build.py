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

from marketpipe.analytics.runner import (
    MARTS_FILE,
    DbtError,
    DbtResult,
    dbt_command,
    dbt_environment,
    marts_path,
    run_dbt,
    work_dir,
)
from marketpipe.analytics.settings import DbtSettings
from marketpipe.analytics.snapshot import snapshot_warm
from marketpipe.storage.embedded import EmbeddedStore

log = logging.getLogger(__name__)

# Commands whose result becomes the served marts; the others (test, docs) work on a copy.
PUBLISHING = frozenset({"build", "run"})


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
    snapshot = await asyncio.to_thread(snapshot_warm, store, work / "inputs")
    log.info("warm snapshot for dbt written in %.2f s", snapshot.seconds)
    live = marts_path(data_dir)
    building = work / "build" / MARTS_FILE
    await asyncio.to_thread(_fresh_copy, live, building)
    variables: dict[str, Any] = {
        "inputs_dir": str(snapshot.directory),
        "lake_trades_glob": snapshot.lake_trades_glob,
        "warm_trades_since_us": snapshot.warm_trades_since_us,
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


def _fresh_copy(live: Path, building: Path) -> None:
    building.parent.mkdir(parents=True, exist_ok=True)
    for stale in (building, building.with_name(building.name + ".wal")):
        stale.unlink(missing_ok=True)
    if live.is_file():
        shutil.copyfile(live, building)
