from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from marketpipe.app import replay
from marketpipe.config import Settings
from marketpipe.serving.api import create_app
from marketpipe.storage.embedded import EmbeddedStore


@pytest.fixture
def client(settings: Settings, recorded_files: list[Path]) -> TestClient:
    replay(settings, recorded_files)
    store = EmbeddedStore(settings.data_dir, read_only=True)
    return TestClient(create_app(store, lambda: {"status": "ok", "components": {}}))


def test_query_endpoint_serves_candles_with_iso_times(client: TestClient) -> None:
    response = client.get("/api/v1/query/candles", params={"symbol": "BTCUSDT", "interval": "5m"})
    assert response.status_code == 200
    rows = response.json()
    assert [r["open_time"] for r in rows][:2] == ["2024-08-08T23:50:00Z", "2024-08-08T23:55:00Z"]
    assert sum(r["trade_count"] for r in rows) == 19_904


@pytest.mark.parametrize(
    "params",
    [{"interval": "7m"}, {"symbol": "???"}, {"limit": "0"}, {"start": "yesterday"}],
)
def test_bad_parameters_get_a_4xx_with_a_message(
    client: TestClient, params: dict[str, str]
) -> None:
    response = client.get("/api/v1/query/candles", params=params)
    assert 400 <= response.status_code < 500
    assert response.json()["detail"]


def test_health_and_prometheus_metrics(client: TestClient) -> None:
    assert client.get("/api/v1/system/health").json()["status"] == "ok"
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "batch_commit_seconds_bucket" in metrics.text
    assert "consumer_messages_inserted_total" in metrics.text
