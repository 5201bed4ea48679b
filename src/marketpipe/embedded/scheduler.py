"""A small in-process job runner for `marketpipe run` and `demo`.

Jobs run on an interval or daily at a UTC time. A job never overlaps itself: a tick that
finds the previous run still going is skipped (and counted). A failure is logged, counted,
shown in `/api/v1/system/health` and retried at the job's next tick. Each run is an asyncio
task of its own, so the engine's loop keeps going; blocking work belongs in threads or
subprocesses (dbt runs as a subprocess).
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from marketpipe.observability.metrics import REGISTRY

log = logging.getLogger(__name__)

JOB_RUNS = Counter(
    "scheduler_job_runs_total",
    "Scheduled job runs, by job and outcome (ok, failed)",
    ["job", "status"],
    registry=REGISTRY,
)
JOB_SKIPPED = Counter(
    "scheduler_job_skipped_total",
    "Ticks skipped because the job's previous run was still going",
    ["job"],
    registry=REGISTRY,
)
JOB_RUNNING = Gauge("scheduler_job_running", "1 while the job runs", ["job"], registry=REGISTRY)
JOB_LAST_SUCCESS = Gauge(
    "scheduler_job_last_success_timestamp_seconds",
    "Unix time the job last succeeded",
    ["job"],
    registry=REGISTRY,
)
JOB_FAILING = Gauge(
    "scheduler_job_failing", "1 while the job's last run failed", ["job"], registry=REGISTRY
)
JOB_DURATION = Histogram(
    "scheduler_job_duration_seconds",
    "Duration of scheduled job runs",
    ["job"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
    registry=REGISTRY,
)

JobFn = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Every:
    """Every `seconds`, the first run `first_after_s` after start (default: one interval)."""

    seconds: float
    first_after_s: float | None = None

    def first(self, now: float) -> float:
        return now + (self.seconds if self.first_after_s is None else self.first_after_s)

    def following(self, started: float, now: float) -> float:
        due = started + self.seconds
        return due if due > now else now + self.seconds

    def describe(self) -> str:
        return f"every {self.seconds:g} s"


@dataclass(frozen=True, slots=True)
class DailyAt:
    """Every day at `hour:minute` UTC."""

    hour: int
    minute: int = 0

    def first(self, now: float) -> float:
        return self.following(now, now)

    def following(self, started: float, now: float) -> float:
        moment = datetime.fromtimestamp(now, UTC)
        due = moment.replace(hour=self.hour, minute=self.minute, second=0, microsecond=0)
        if due.timestamp() <= now:
            due += timedelta(days=1)
        return due.timestamp()

    def describe(self) -> str:
        return f"daily at {self.hour:02d}:{self.minute:02d} UTC"


Schedule = Every | DailyAt


@dataclass
class Job:
    name: str
    run: JobFn
    schedule: Schedule
    # After a failure the job comes back this much later (None: at its next regular tick).
    retry_after_s: float | None = None
    # state
    next_due: float = 0.0
    runs: int = 0
    failures: int = 0
    skipped: int = 0
    running_since: float | None = None
    last_status: str = "pending"  # pending | ok | failed
    last_error: str | None = None
    last_started: float | None = None
    last_finished: float | None = None
    last_duration_s: float | None = None
    last_success: float | None = None
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def status(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule.describe(),
            "last_status": self.last_status,
            "running": self.running_since is not None,
            "runs": self.runs,
            "failures": self.failures,
            "skipped_overlapping": self.skipped,
            "last_error": self.last_error,
            "last_started": _iso(self.last_started),
            "last_duration_s": self.last_duration_s,
            "last_success": _iso(self.last_success),
            "next_due": _iso(self.next_due),
        }


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Scheduler:
    def __init__(
        self,
        jobs: list[Job],
        *,
        tick_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        names = [job.name for job in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names must be unique: {names}")
        self.jobs = {job.name: job for job in jobs}
        self.tick_s = tick_s
        self.clock = clock
        self._started = False

    async def run(self) -> None:
        """Tick until cancelled; cancelling also cancels running jobs."""
        now = self.clock()
        for job in self.jobs.values():
            job.next_due = job.schedule.first(now)
            log.info("scheduled %s: %s", job.name, job.schedule.describe())
        self._started = True
        try:
            while True:
                self.tick()
                await asyncio.sleep(self.tick_s)
        finally:
            running = [j._task for j in self.jobs.values() if j._task and not j._task.done()]
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    def tick(self) -> None:
        now = self.clock()
        for job in self.jobs.values():
            if now < job.next_due:
                continue
            if job.running_since is not None:
                job.skipped += 1
                JOB_SKIPPED.labels(job.name).inc()
                log.warning("%s still running since %.0f s; tick skipped", job.name,
                            now - job.running_since)  # fmt: skip
                job.next_due = job.schedule.following(job.next_due, now)
                continue
            self.start(job, now)

    def start(self, job: Job, now: float | None = None) -> asyncio.Task[None]:
        """Start a run of `job` now (also used to trigger one by hand)."""
        now = self.clock() if now is None else now
        job.running_since = now
        job.last_started = now
        JOB_RUNNING.labels(job.name).set(1)
        job.next_due = job.schedule.following(max(job.next_due, now), now)
        job._task = asyncio.create_task(self._execute(job), name=f"job:{job.name}")
        return job._task

    async def _execute(self, job: Job) -> None:
        started = time.perf_counter()
        try:
            await job.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            job.failures += 1
            job.last_status, job.last_error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
            JOB_RUNS.labels(job.name, "failed").inc()
            JOB_FAILING.labels(job.name).set(1)
            log.exception("%s failed; retrying at its next tick", job.name)
            if job.retry_after_s is not None:
                job.next_due = min(job.next_due, self.clock() + job.retry_after_s)
        else:
            job.last_status, job.last_error = "ok", None
            job.last_success = self.clock()
            JOB_RUNS.labels(job.name, "ok").inc()
            JOB_FAILING.labels(job.name).set(0)
            JOB_LAST_SUCCESS.labels(job.name).set(job.last_success)
        finally:
            job.runs += 1
            job.last_duration_s = round(time.perf_counter() - started, 3)
            job.last_finished = self.clock()
            JOB_DURATION.labels(job.name).observe(job.last_duration_s)
            job.running_since = None
            JOB_RUNNING.labels(job.name).set(0)

    def status(self) -> dict[str, Any]:
        """The `scheduler` component of `/api/v1/system/health`."""
        failing = [j.name for j in self.jobs.values() if j.last_status == "failed"]
        return {
            "status": "failing" if failing else "ok",
            "failing_jobs": failing,
            "jobs": {name: job.status() for name, job in self.jobs.items()},
        }
