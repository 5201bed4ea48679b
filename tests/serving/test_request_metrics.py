"""api_requests_total and api_request_duration_seconds (the API 5xx and latency alerts of
deploy/prometheus/rules): counted per route template and status, refused requests included."""

from fastapi.testclient import TestClient

from marketpipe.observability.metrics import REGISTRY


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
