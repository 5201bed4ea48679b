"""The scheduled jobs of embedded mode: the dbt build and the daily storage lifecycle."""

import asyncio
import importlib
import logging
import time
from collections.abc import Callable
from typing import Any

from marketpipe.analytics.build import run_for_mode
from marketpipe.analytics.runner import DbtError
from marketpipe.config import Settings
from marketpipe.scheduler import DailyAt, Every, Job, JobUnavailable
from marketpipe.storage.embedded import EmbeddedStore

log = logging.getLogger(__name__)

# The storage lifecycle (retention, warm -> lake archival, compaction) is owned by the storage
# work: `run_lifecycle(settings, now_us, store=...)`, given the running pipeline's store
# (DuckDB has one writer). The scheduler calls it through this hook once it is installed and
# reports the job as "unavailable" until then.
LIFECYCLE_ENTRY_POINT = ("marketpipe.lifecycle_job", "run_lifecycle")


def dbt_build_job(settings: Settings, store: EmbeddedStore) -> Job:
    async def build() -> None:
        result = await run_for_mode(
            settings.dbt, "build", [], data_dir=settings.data_dir, store=store
        )
        if not result.ok:
            raise DbtError(f"dbt build exited {result.returncode}:\n{result.tail(15)}")
        log.info("scheduled dbt build passed in %.1f s", result.seconds)

    every = Every(settings.scheduler.dbt_build_every_s, settings.scheduler.dbt_first_build_after_s)
    return Job("dbt_build", build, every)


def lifecycle_job(settings: Settings, store: EmbeddedStore) -> Job:
    async def lifecycle() -> None:
        run = lifecycle_hook()
        report = await asyncio.to_thread(run, settings, int(time.time() * 1e6), store=store)
        log.info("lifecycle done: %s", report)

    hour, minute = settings.scheduler.lifecycle_time
    retry = settings.scheduler.retry_after_s
    return Job("lifecycle", lifecycle, DailyAt(hour, minute), retry_after_s=retry)


def lifecycle_hook() -> Callable[..., Any]:
    """`run_lifecycle` of the storage lifecycle, or JobUnavailable while it is missing."""
    module_name, attribute = LIFECYCLE_ENTRY_POINT
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        raise JobUnavailable(
            f"{module_name}.{attribute} is not installed yet; nothing to run"
        ) from None
    run: Callable[..., Any] = getattr(module, attribute)
    return run


def embedded_jobs(settings: Settings, store: EmbeddedStore) -> list[Job]:
    return [dbt_build_job(settings, store), lifecycle_job(settings, store)]
