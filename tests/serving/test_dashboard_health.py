"""The dashboard shows trouble (headless Chromium over a real `marketpipe run`): a dbt build
that fails and then the venue going down each turn the health strip to `degraded`, naming
the component and the reason; `/api/v1/system/health` lists the same problems."""

import json
import os
import signal
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.chaos.live import live_env, start_exchange
from tests.stopping import start

pytestmark = pytest.mark.integration


def _strip(page: Page) -> str:
    return page.locator("[data-testid=health-state]").inner_text()


def _wait_text(page: Page, selector: str, text: str, timeout_ms: float = 60_000) -> None:
    page.wait_for_function(
        "([sel, text]) => (document.querySelector(sel)?.innerText || '').includes(text)",
        arg=[selector, text],
        timeout=timeout_ms,
    )


def test_the_health_strip_names_a_failed_dbt_build_and_a_venue_that_went_down(
    browser: Browser, tmp_path: Path
) -> None:
    exchanges = start_exchange("seed=1")
    exchange = next(exchanges)
    data = tmp_path / "data"
    env = live_env(exchange) | {
        "MARKETPIPE_DBT__EXECUTABLE": "/bin/false",  # every dbt build fails
        "MARKETPIPE_SCHEDULER__DBT_FIRST_BUILD_AFTER_S": "0",
        "MARKETPIPE_API__RATE_LIMIT": "100000/minute",
    }
    run = start("run", "--data-dir", str(data), "--port", "0", "--symbols", "BTCUSDT,ETHUSDT",
                cwd=tmp_path, env=env)  # fmt: skip
    try:
        lock = data / "marketpipe.lock.json"
        run.wait_until(lock.is_file, "the API")
        base = f"http://127.0.0.1:{json.loads(lock.read_text())['port']}"
        page = browser.new_page(viewport={"width": 1440, "height": 860})
        page.goto(base, wait_until="networkidle")
        page.wait_for_selector("body[data-ready=true]", timeout=60_000)

        # The failed build: the strip names the scheduler, the banner says which job failed.
        _wait_text(page, "[data-testid=health-state]", "scheduler")
        assert _strip(page).splitlines()[-1] == "degraded: scheduler"
        line = page.locator("[data-testid=health-problems] [data-component=scheduler]")
        assert line.inner_text().startswith("scheduler")
        assert "dbt_build failed" in line.inner_text()
        assert "binance" not in _strip(page)  # the venue is still up

        # The venue goes down: the strip names it too.
        next(exchanges, None)  # stops the simulated exchange
        _wait_text(page, "[data-testid=health-state]", "binance")
        # Components in health's order: the venue, then the scheduler.
        assert _strip(page).splitlines()[-1] == "degraded: binance, scheduler"
        venue = page.locator("[data-testid=health-problems] [data-component=binance]")
        assert "venue disconnected, reconnecting (0 connections open)" in venue.inner_text()
        shots = Path(os.environ.get("MARKETPIPE_SCREENSHOTS", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "dashboard-degraded.png"))

        health = httpx.get(f"{base}/api/v1/system/health", timeout=10)
        assert health.status_code == 503
        body = health.json()
        assert body["status"] == "degraded"
        assert [p["component"] for p in body["problems"]] == ["binance", "scheduler"]
        assert {p["component"]: p["status"] for p in body["problems"]} == {
            "scheduler": "failing",
            "binance": "degraded",
        }
        page.close()
    finally:
        next(exchanges, None)
        if run.proc.poll() is None:
            run.stop(signal.SIGTERM)
