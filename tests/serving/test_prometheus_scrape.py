"""A real Prometheus server (Debian's `prometheus`) scrapes a real `marketpipe serve`'s
/metrics: the target is up and our metric families arrive in its TSDB."""

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from tests.serving.conftest import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def prometheus(served: str, tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is missing: run `make test` (scripts/setup.d installs it)")
    target = urlparse(served).netloc
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: marketpipe\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def _query(base: str, expr: str) -> list[dict[str, object]]:
    response = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=5)
    response.raise_for_status()
    result: list[dict[str, object]] = response.json()["data"]["result"]
    return result


def test_prometheus_scrapes_our_metrics(prometheus: str) -> None:
    deadline = time.monotonic() + 90
    up: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        try:
            up = _query(prometheus, 'up{job="marketpipe"}')
        except httpx.HTTPError:
            up = []
        if up and up[0]["value"][1] == "1":  # type: ignore[index]
            break
        time.sleep(1)
    assert up and up[0]["value"][1] == "1", f"target never came up: {up}"  # type: ignore[index]
    for family in ("batch_commit_seconds_count", "api_ws_clients"):
        assert _query(prometheus, family), f"{family} not scraped"
