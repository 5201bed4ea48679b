"""Shared fixtures: the real recorded Binance files and settings pointed at a temp data dir."""

import logging
import sys
from pathlib import Path

import pytest

from marketpipe.config import Settings, load_settings

# Real servers, session-scoped: PostgreSQL, Redis, S3 (scripts/servers/*.sh), the Kafka
# broker (deploy/kafka/broker.py) and a local Spark session.
pytest_plugins = [
    "tests.servers.scripts",
    "tests.servers.postgres",
    "tests.servers.redis",
    "tests.servers.s3",
    "tests.servers.gcs",
    "tests.servers.bigquery",
    "tests.storage.recorded",  # recorded_batches: a replay's committed batches
    "tests.servers.kafka",
    "tests.servers.spark",
]

DATA = Path(__file__).parent / "data"
BINANCE_08 = DATA / "binance" / "btcusdt-spot-2024-08-08.recv.gz"
BINANCE_09 = DATA / "binance" / "btcusdt-spot-2024-08-09.recv.gz"


@pytest.fixture
def recorded_files() -> list[Path]:
    return [BINANCE_08, BINANCE_09]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)  # no stray marketpipe.toml
    return load_settings(data_dir=tmp_path / "data", log_format="json")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Drop log handlers bound to pytest's capture streams (a test's configure_logging binds
    one to the sys.stderr of that moment). Finalizers that log at interpreter exit — py4j's
    connection __del__ — would otherwise hit a closed file and print a "Logging error"
    traceback after the summary."""
    root = logging.getLogger()
    root.handlers[:] = [
        h
        for h in root.handlers
        if not isinstance(h, logging.StreamHandler) or h.stream in (sys.__stderr__, sys.__stdout__)
    ]
