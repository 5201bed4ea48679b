"""The scheduled dbt build inside a live demo: it runs while trades keep flowing, publishes
the marts atomically, and the API serves them; health and metrics show the job."""

import asyncio
import itertools
import time

import httpx
import pytest

from marketpipe.config import Settings
from marketpipe.embedded.demo import point_at
from marketpipe.embedded.live import LiveRun
from marketpipe.simulator import SimulatedExchange, SyntheticMarket
from tests.dbt.warehouse import require_dbt

# dbt and Airflow runs take minutes when the machine is busy.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

SYMBOLS = ["BTC-USDT", "ETH-USDT", "SOL-USDT"]


def demo_settings(settings: Settings) -> Settings:
    scheduler = settings.scheduler.model_copy(
        update={"dbt_first_build_after_s": 2.0, "dbt_build_every_s": 3600.0}
    )
    api = settings.api.model_copy(update={"port": 0})
    return settings.model_copy(update={"symbols": SYMBOLS, "scheduler": scheduler, "api": api})


async def test_scheduled_dbt_build_runs_while_trades_flow_and_serves_marts(
    settings: Settings,
) -> None:
    require_dbt()
    settings = demo_settings(settings)
    commits_ns: list[int] = []
    windows: list[tuple[int, int]] = []
    seen: dict[str, object] = {}

    def on_commit(batch: object, done_ns: int) -> None:
        commits_ns.append(done_ns)

    async def watch(live: LiveRun) -> None:
        """Record the dbt job's running window, then query the API once it succeeded."""
        assert live.scheduler is not None
        job = live.scheduler.jobs["dbt_build"]
        started: int | None = None
        deadline = time.monotonic() + 900  # a build takes minutes on a busy machine
        while time.monotonic() < deadline:
            if job.running_since is not None and started is None:
                started = time.perf_counter_ns()
            if job.running_since is None and started is not None:
                windows.append((started, time.perf_counter_ns()))
                break
            await asyncio.sleep(0.05)
        base = f"http://127.0.0.1:{live.api_port}"
        async with httpx.AsyncClient(timeout=30) as client:
            seen["health"] = (await client.get(f"{base}/api/v1/system/health")).json()
            seen["metrics"] = (await client.get(f"{base}/metrics")).text
            overview = await client.get(f"{base}/api/v1/analytics/market-overview")
            seen["overview"] = (overview.status_code, overview.json())
            daily = await client.get(
                f"{base}/api/v1/analytics/summary/daily", params={"symbol": "ETHUSDT"}
            )
            seen["daily"] = (daily.status_code, daily.json())
        live.stop()

    def ready(live: LiveRun) -> None:
        seen["watcher"] = asyncio.get_running_loop().create_task(watch(live))

    async with SimulatedExchange(SyntheticMarket(SYMBOLS, 300, seed=5)) as exchange:
        live = LiveRun(point_at(settings, exchange), on_commit=on_commit)
        await asyncio.wait_for(live.run(None, ready), 1000)

    assert windows, "the dbt build never finished"
    (start, end) = windows[0]
    job = seen["health"]["components"]["scheduler"]["jobs"]["dbt_build"]  # type: ignore[index]
    assert job["last_status"] == "ok", job
    assert job["runs"] == 1
    # Trades kept committing while dbt ran: the pipeline never stalled on it.
    during = [t for t in commits_ns if start <= t <= end]
    assert len(during) >= 10, (len(during), (end - start) / 1e9)
    gaps_ms = [(b - a) / 1e6 for a, b in itertools.pairwise(during)]
    assert max(gaps_ms) < 5_000
    assert 'scheduler_job_runs_total{job="dbt_build",status="ok"} 1.0' in str(seen["metrics"])
    status, overview = seen["overview"]  # type: ignore[misc]
    assert status == 200
    assert sorted(row["symbol"] for row in overview) == SYMBOLS
    assert [row["volume_rank"] for row in overview] == sorted(r["volume_rank"] for r in overview)
    status, daily = seen["daily"]  # type: ignore[misc]
    assert status == 200 and daily and {row["symbol"] for row in daily} == {"ETH-USDT"}
    assert (settings.data_dir / "analytics.duckdb").is_file()


async def test_lifecycle_job_calls_the_storage_hook_with_the_running_store(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from marketpipe.embedded import jobs
    from marketpipe.embedded.scheduler import Scheduler
    from marketpipe.storage.embedded import EmbeddedStore

    calls: list[tuple[object, int, object]] = []
    monkeypatch.setattr(
        jobs,
        "run_embedded_lifecycle",
        lambda s, now, *, store: calls.append((s, now, store)) or "report",
    )
    store = EmbeddedStore(settings.data_dir)
    try:
        job = jobs.lifecycle_job(settings, store)
        scheduler = Scheduler([job])
        before = time.time() * 1e6
        await scheduler.start(job)
    finally:
        store.close()
    assert job.last_status == "ok"
    (called_settings, now_us, called_store) = calls[0]
    assert called_settings is settings and called_store is store
    assert before <= now_us <= time.time() * 1e6  # microseconds, not seconds
