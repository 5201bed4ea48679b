"""The in-process job runner: intervals, daily-at-UTC, no overlap, failures and retries."""

import asyncio
from datetime import UTC, datetime

import pytest

from marketpipe.embedded.scheduler import DailyAt, Every, Job, Scheduler
from marketpipe.observability.metrics import REGISTRY

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_daily_at_is_the_next_utc_occurrence() -> None:
    daily = DailyAt(3, 0)
    assert daily.first(at("2024-08-09T02:59:59")) == at("2024-08-09T03:00:00")
    assert daily.following(0, at("2024-08-09T03:00:00")) == at("2024-08-10T03:00:00")
    assert daily.following(0, at("2024-08-09T23:00:00")) == at("2024-08-10T03:00:00")


async def test_interval_job_runs_first_after_delay_then_every_interval() -> None:
    clock = Clock(1000.0)
    runs: list[float] = []

    async def work() -> None:
        runs.append(clock.now)

    job = Job("interval_job", work, Every(600, first_after_s=60))
    scheduler = Scheduler([job], clock=clock)
    job.next_due = job.schedule.first(clock.now)
    for now in (1000, 1059, 1060, 1061, 1659, 1660, 2260):
        clock.now = now
        scheduler.tick()
        await settle()
    assert runs == [1060, 1660, 2260]
    assert job.status()["last_status"] == "ok" and job.runs == 3


async def test_a_running_job_never_overlaps_and_skipped_ticks_are_counted() -> None:
    clock = Clock(0.0)
    release = asyncio.Event()
    started = 0

    async def slow() -> None:
        nonlocal started
        started += 1
        await release.wait()

    job = Job("slow_job", slow, Every(10, first_after_s=0))
    scheduler = Scheduler([job], clock=clock)
    before = metric("scheduler_job_skipped_total", job="slow_job")
    for now in (0, 10, 20, 30):
        clock.now = now
        scheduler.tick()
        await settle()
    assert started == 1 and job.skipped == 3
    assert metric("scheduler_job_skipped_total", job="slow_job") - before == 3
    assert scheduler.status()["jobs"]["slow_job"]["running"] is True
    release.set()
    await settle()
    clock.now = 40
    scheduler.tick()
    await settle()
    assert started == 2


async def test_a_failure_is_reported_then_retried_at_the_next_tick() -> None:
    clock = Clock(0.0)
    outcomes = [RuntimeError("dbt exited 1"), None]

    async def flaky() -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    job = Job("flaky_job", flaky, Every(600, first_after_s=0))
    scheduler = Scheduler([job], clock=clock)
    failed_before = metric("scheduler_job_runs_total", job="flaky_job", status="failed")
    scheduler.tick()
    await settle()
    status = scheduler.status()
    assert status["status"] == "failing" and status["failing_jobs"] == ["flaky_job"]
    assert "dbt exited 1" in status["jobs"]["flaky_job"]["last_error"]
    assert metric("scheduler_job_runs_total", job="flaky_job", status="failed") == failed_before + 1
    assert metric("scheduler_job_failing", job="flaky_job") == 1
    clock.now = 599
    scheduler.tick()
    await settle()
    assert outcomes  # not retried before its next tick
    clock.now = 600
    scheduler.tick()
    await settle()
    assert not outcomes
    assert scheduler.status()["status"] == "ok"
    assert metric("scheduler_job_failing", job="flaky_job") == 0
    assert metric("scheduler_job_last_success_timestamp_seconds", job="flaky_job") == 600


async def test_daily_job_retries_after_retry_delay_not_a_day_later() -> None:
    clock = Clock(at("2024-08-09T03:00:00"))
    attempts: list[float] = []

    async def lifecycle() -> None:
        attempts.append(clock.now)
        if len(attempts) == 1:
            raise OSError("disk full")

    job = Job("daily_job", lifecycle, DailyAt(3, 0), retry_after_s=600)
    scheduler = Scheduler([job], clock=clock)
    job.next_due = clock.now
    scheduler.tick()
    await settle()
    clock.now += 600
    scheduler.tick()
    await settle()
    assert attempts == [at("2024-08-09T03:00:00"), at("2024-08-09T03:10:00")]
    assert job.next_due == at("2024-08-10T03:00:00")


async def test_run_starts_jobs_and_cancelling_it_cancels_running_jobs() -> None:
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    scheduler = Scheduler([Job("forever_job", forever, Every(60, 0))], tick_s=0.01)
    task = asyncio.create_task(scheduler.run())
    await asyncio.sleep(0.1)
    assert scheduler.jobs["forever_job"].running_since is not None
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert cancelled.is_set()


def test_job_names_must_be_unique() -> None:
    async def noop() -> None:
        return None

    with pytest.raises(ValueError, match="unique"):
        Scheduler([Job("a", noop, Every(1)), Job("a", noop, Every(1))])
