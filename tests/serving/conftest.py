"""Serving fixtures: one replay of the two recorded BTCUSDT files per session, an in-process
app over it, and a real `marketpipe serve` subprocess on a free port."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, sync_playwright

from marketpipe.config import load_settings
from marketpipe.embedded.replay import replay
from marketpipe.serving.app import create_app
from marketpipe.serving.backend import embedded_backend
from marketpipe.serving.settings import ApiSettings
from marketpipe.storage.embedded import EmbeddedStore
from tests.conftest import BINANCE_08, BINANCE_09
from tests.serving.recordings import write_eth_recording

RECORDED = [BINANCE_08, BINANCE_09]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def replayed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _replay_into(tmp_path_factory.mktemp("replayed"), RECORDED)


def _replay_into(root: Path, files: list[Path]) -> Path:
    cwd = os.getcwd()
    os.chdir(root)  # no stray marketpipe.toml
    try:
        replay(load_settings(data_dir=root / "data", log_format="json"), files)
    finally:
        os.chdir(cwd)
    return root / "data"


@pytest.fixture(scope="session")
def two_symbol_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The BTCUSDT files plus a synthetic ETHUSDT recording (for symbol switching)."""
    root = tmp_path_factory.mktemp("two-symbols")
    return _replay_into(root, [*RECORDED, write_eth_recording(root / "ethusdt.recv")])


@pytest.fixture(scope="session")
def store(replayed_dir: Path) -> Iterator[EmbeddedStore]:
    opened = EmbeddedStore(replayed_dir, read_only=True)
    yield opened
    opened.close()


def healthy() -> dict[str, object]:
    return {"status": "ok", "components": {"storage": {"status": "ok"}}}


@pytest.fixture(scope="session")
def client(store: EmbeddedStore) -> TestClient:
    settings = ApiSettings(rate_limit="100000/minute")
    return TestClient(create_app(embedded_backend(store, healthy), settings))


@contextlib.contextmanager
def serving(data_dir: Path, workdir: Path, **env_extra: str) -> Iterator[str]:
    """A real `marketpipe serve --data-dir DIR --port P` subprocess; yields its base URL."""
    port = free_port()
    log = workdir / "serve.log"
    env = {**os.environ, "MARKETPIPE_API__RATE_LIMIT": "100000/minute", **env_extra}
    if "MARKETPIPE_API__TOKEN" not in env_extra:
        env.pop("MARKETPIPE_API__TOKEN", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "marketpipe.cli", "serve", "--data-dir", str(data_dir),
         "--port", str(port)],
        cwd=workdir, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if process.poll() is not None:
                output = log.read_text(errors="replace")
                raise RuntimeError(f"marketpipe serve exited early:\n{output}")
            try:
                if httpx.get(f"{base}/api/v1/system/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("marketpipe serve did not become healthy in 60 s")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def served(replayed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(replayed_dir, tmp_path_factory.mktemp("serve")) as base:
        yield base


# Headless Chromium from apt (never `playwright install`), for the dashboard tests.
CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (scripts/setup.d installs chromium)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield launched
        launched.close()
