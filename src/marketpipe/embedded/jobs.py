"""The scheduled jobs of embedded mode: the dbt build and the daily storage lifecycle."""

import asyncio
import logging
import time

from marketpipe.analytics.build import run_for_mode
from marketpipe.analytics.runner import DbtError
from marketpipe.config import Settings
from marketpipe.embedded.lifecycle import run_embedded_lifecycle
from marketpipe.embedded.scheduler import DailyAt, Every, Job
from marketpipe.storage.embedded import EmbeddedStore

log = logging.getLogger(__name__)


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
        # On the running pipeline's store: DuckDB has one writer.
        now_us = int(time.time() * 1e6)
        report = await asyncio.to_thread(run_embedded_lifecycle, settings, now_us, store=store)
        log.info("lifecycle done: %s", report)

    hour, minute = settings.scheduler.lifecycle_time
    retry = settings.scheduler.retry_after_s
    return Job("lifecycle", lifecycle, DailyAt(hour, minute), retry_after_s=retry)


def embedded_jobs(settings: Settings, store: EmbeddedStore) -> list[Job]:
    return [dbt_build_job(settings, store), lifecycle_job(settings, store)]
