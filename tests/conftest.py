"""Shared fixtures: the real recorded Binance files and settings pointed at a temp data dir."""

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
