"""api_requests_total and api_request_duration_seconds (the API 5xx and latency alerts of
deploy/prometheus/rules): counted per route template and status, refused requests included."""

from fastapi.testclient import TestClient
from pydantic import SecretStr

from marketpipe.observability.metrics import REGISTRY
from marketpipe.serving.app import create_app
from marketpipe.serving.backend import embedded_backend
from marketpipe.serving.settings import ApiSettings
from marketpipe.storage.embedded import EmbeddedStore
from tests.serving.conftest import healthy


def _count(route: str, status: str, method: str = "GET") -> float:
    value = REGISTRY.get_sample_value(
        "api_requests_total", {"method": method, "route": route, "status": status}
    )
    return value or 0.0


def _timed(route: str) -> float:
    return REGISTRY.get_sample_value("api_request_duration_seconds_count", {"route": route}) or 0.0


def test_each_request_is_counted_once_under_its_route_template_and_status(
    client: TestClient,
) -> None:
    ok, bad = _count("/api/v3/klines", "200"), _count("/api/v3/klines", "400")
    timed = _timed("/api/v3/klines")
    assert client.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m"}).is_success
    assert (
        client.get("/api/v3/klines", params={"symbol": "FOOBAR", "interval": "1m"}).status_code
        == 400
    )
    assert client.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m"}).is_success
    assert _count("/api/v3/klines", "200") == ok + 2
    assert _count("/api/v3/klines", "400") == bad + 1
    assert _timed("/api/v3/klines") == timed + 3


def test_a_path_no_route_matches_shares_one_label(client: TestClient) -> None:
    before = _count("unmatched", "404")
    assert client.get("/no/such/path/123").status_code == 404
    assert client.get("/another/unknown").status_code == 404
    assert _count("unmatched", "404") == before + 2
    assert (
        REGISTRY.get_sample_value(
            "api_requests_total", {"method": "GET", "route": "/no/such/path/123", "status": "404"}
        )
        is None
    )


def test_requests_refused_by_the_token_check_are_counted_too(store: EmbeddedStore) -> None:
    settings = ApiSettings(token=SecretStr("s3cret"), rate_limit="100000/minute")
    app = TestClient(create_app(embedded_backend(store, healthy), settings))
    before = _count("unmatched", "401") + _count("/api/v3/klines", "401")
    params = {"symbol": "BTCUSDT", "interval": "1m"}
    assert app.get("/api/v3/klines", params=params).status_code == 401
    authorized = app.get(
        "/api/v3/klines", params=params, headers={"Authorization": "Bearer s3cret"}
    )
    assert authorized.status_code == 200
    assert _count("unmatched", "401") + _count("/api/v3/klines", "401") == before + 1
