"""The app in-process: native endpoints, validation, gap filling, token, CORS, rate limits,
and errors without stack traces."""

from typing import Any

import msgspec
import pytest
from fastapi.testclient import TestClient

from marketpipe.model.records import Candle
from marketpipe.serving.app import create_app
from marketpipe.serving.backend import embedded_backend
from marketpipe.serving.market import fill_gaps
from marketpipe.serving.settings import ApiSettings
from marketpipe.storage.embedded import EmbeddedStore
from tests.serving.conftest import healthy

MIN = 60_000_000


def test_query_endpoint_serves_candles_with_iso_times(client: TestClient) -> None:
    response = client.get("/api/v1/query/candles", params={"symbol": "BTCUSDT", "interval": "5m"})
    assert response.status_code == 200
    rows = response.json()
    assert [r["open_time"] for r in rows][:2] == ["2024-08-08T23:50:00Z", "2024-08-08T23:55:00Z"]
    assert sum(r["trade_count"] for r in rows) == 19_904


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/query/candles", {"interval": "7m"}),
        ("/api/v1/query/candles", {"symbol": "???"}),
        ("/api/v1/query/candles", {"limit": "0"}),
        ("/api/v1/query/candles", {"start": "yesterday"}),
        ("/api/v1/analytics/klines/BTCUSDT", {"interval": "2h"}),
        ("/api/v1/analytics/klines/BTCUSDT", {"start": "last tuesday"}),
        ("/api/v1/analytics/klines/BTCUSDT", {"start": "2024-08-09T00:00:00Z",
                                              "end": "2024-08-08T00:00:00Z"}),
        ("/api/v1/analytics/klines/NOPEUSDT", {}),
        ("/api/v1/analytics/alerts", {"kind": "earthquake"}),
        ("/api/v1/market/top-by-volume", {"limit": "1000"}),
        # A digit that int() refuses, and instants past what any store holds (were 500 / 503).
        ("/api/v1/analytics/klines/BTCUSDT", {"start": "\u00b2"}),
        ("/api/v1/analytics/klines/BTCUSDT", {"end": "99999999999999999999"}),
        ("/api/v1/query/alerts", {"start": "99999999999999999999"}),
    ],
)  # fmt: skip
def test_bad_parameters_get_a_4xx_that_says_what_is_wrong(
    client: TestClient, path: str, params: dict[str, str]
) -> None:
    response = client.get(path, params=params)
    assert 400 <= response.status_code < 500
    assert response.json()["detail"]


@pytest.mark.parametrize("path", ["/api/v3/klines", "/api/v3/aggTrades"])
def test_binance_times_past_year_9999_are_not_a_server_error(client: TestClient, path: str) -> None:
    params = {"symbol": "BTCUSDT", "interval": "1m", "startTime": "99999999999999999999"}
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.json() == []


def test_native_klines_page_forward_with_next_start(client: TestClient) -> None:
    first = client.get(
        "/api/v1/analytics/klines/BTC-USDT",
        params={"interval": "1m", "start": "2024-08-08T23:00:00Z", "limit": 5},
    ).json()
    assert len(first["candles"]) == 5
    second = client.get(
        "/api/v1/analytics/klines/BTC-USDT",
        params={"interval": "1m", "start": first["next_start"], "limit": 100},
    ).json()
    assert len(second["candles"]) == 7 and second["next_start"] is None
    assert second["candles"][0]["open_time"] == first["next_start"]


def test_health_and_prometheus_metrics(client: TestClient) -> None:
    assert client.get("/api/v1/system/health").json()["status"] == "ok"
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "batch_commit_seconds_bucket" in metrics.text
    assert "consumer_messages_inserted_total" in metrics.text


def _candle(open_time: int, close: float, trades: int = 1) -> Candle:
    return Candle(
        "binance", "BTC-USDT", "1m", open_time, open_time + MIN, close - 1, close + 1,
        close - 2, close, 1.0, close, trades, 0.5, close / 2, close, 1, 1, True, 0,
    )  # fmt: skip


def test_empty_windows_are_filled_like_binance_with_the_previous_close() -> None:
    filled = fill_gaps([_candle(0, 100.0), _candle(3 * MIN, 90.0)], MIN)
    assert [c.open_time for c in filled] == [0, MIN, 2 * MIN, 3 * MIN]
    for gap in filled[1:3]:
        assert (gap.open, gap.high, gap.low, gap.close) == (100.0, 100.0, 100.0, 100.0)
        assert gap.volume == 0 and gap.trade_count == 0 and gap.quote_volume == 0


def test_binance_klines_fill_gaps_over_the_api(store: EmbeddedStore) -> None:
    # A backend whose warm tier lacks two minutes: the API must fill them, not skip them.
    backend = embedded_backend(store, healthy)
    real = backend.router.candles("binance", "BTC-USDT", "1m", None, None).records
    holes = {real[4].open_time, real[5].open_time}
    warm = backend.router.tiers[1]

    class Holey:
        name = "warm"

        def __getattr__(self, item: str) -> Any:
            return getattr(warm, item)

        def candles(self, *args: Any, **kwargs: Any) -> list[Candle]:
            found = warm.candles(*args, **kwargs)
            return [c for c in found if c.open_time not in holes]

    backend.router.tiers = (Holey(),)  # type: ignore[assignment]
    app = TestClient(create_app(backend))
    rows = app.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m"}).json()
    assert len(rows) == 12
    for row in rows[4:6]:
        assert row[1:5] == [rows[3][4]] * 4  # o=h=l=c=previous close
        assert row[5] == "0.00000000" and row[8] == 0


@pytest.fixture
def guarded(store: EmbeddedStore) -> TestClient:
    settings = ApiSettings(
        token="s3cret",  # type: ignore[arg-type]
        cors_origins=["https://charts.example"],
        rate_limit="5/minute",
        dashboard_rate_limit="1000/minute",
    )
    return TestClient(create_app(embedded_backend(store, healthy), settings))


def test_token_is_required_except_for_health_and_metrics(guarded: TestClient) -> None:
    assert guarded.get("/api/v1/system/health").status_code == 200
    assert guarded.get("/metrics").status_code == 200
    denied = guarded.get("/api/v1/market/realtime")
    assert denied.status_code == 401 and denied.json()["detail"]
    binance = guarded.get("/api/v3/ticker/price")
    assert binance.status_code == 401 and binance.json()["code"] == -2015
    assert (
        guarded.get("/api/v1/market/realtime", headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    ok = guarded.get("/api/v1/market/realtime", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200
    # Binance clients send it as their API key.
    assert guarded.get("/api/v3/ping", headers={"X-MBX-APIKEY": "s3cret"}).status_code == 200


def test_without_a_required_token_invented_tokens_share_their_ip_budget(
    store: EmbeddedStore,
) -> None:
    open_api = TestClient(
        create_app(embedded_backend(store, healthy), ApiSettings(rate_limit="3/minute"))
    )
    seen = [
        open_api.get("/api/v3/time", headers={"X-MBX-APIKEY": f"made-up-{i}"}).status_code
        for i in range(4)
    ]
    assert seen == [200, 200, 200, 429]


def test_cors_allows_only_configured_origins(guarded: TestClient) -> None:
    preflight = {"Access-Control-Request-Method": "GET"}
    allowed = guarded.options(
        "/api/v3/ping", headers={"Origin": "https://charts.example", **preflight}
    )
    assert allowed.headers["access-control-allow-origin"] == "https://charts.example"
    other = guarded.options("/api/v3/ping", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers


def test_rate_limit_headers_then_429_with_retry_after(guarded: TestClient) -> None:
    auth = {"Authorization": "Bearer s3cret"}
    seen = [guarded.get("/api/v3/time", headers=auth) for _ in range(6)]
    assert [r.status_code for r in seen] == [200] * 5 + [429]
    assert seen[0].headers["X-RateLimit-Limit"] == "5"
    assert [r.headers["X-RateLimit-Remaining"] for r in seen[:5]] == ["4", "3", "2", "1", "0"]
    assert int(seen[-1].headers["Retry-After"]) >= 1
    assert seen[-1].json()["code"] == -1003
    # The dashboard's own calls draw on their own budget and keep working.
    dashboard = guarded.get("/api/v3/time", headers={**auth, "X-Marketpipe-Client": "dashboard"})
    assert dashboard.status_code == 200
    assert dashboard.headers["X-RateLimit-Limit"] == "1000"


def test_an_unexpected_failure_is_a_bare_500_without_a_stack_trace(store: EmbeddedStore) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("secret internals at /srv/app.py line 42")

    app = TestClient(create_app(embedded_backend(store, broken)), raise_server_exceptions=False)
    response = app.get("/api/v1/system/health")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
    assert "Traceback" not in response.text and "secret" not in response.text


def test_openapi_docs_list_every_endpoint(client: TestClient) -> None:
    paths = set(client.get("/openapi.json").json()["paths"])
    for path in (
        "/api/v1/market/realtime", "/api/v1/market/summary", "/api/v1/market/top-by-volume",
        "/api/v1/market/top-by-trades", "/api/v1/market/ticker-health",
        "/api/v1/analytics/klines/{symbol}", "/api/v1/analytics/trades-count",
        "/api/v1/analytics/alerts", "/api/v1/analytics/alerts/whale-alerts",
        "/api/v1/system/health", "/metrics", "/api/v3/klines", "/api/v3/uiKlines",
        "/api/v3/trades", "/api/v3/aggTrades", "/api/v3/ticker/24hr", "/api/v3/ticker/price",
        "/api/v3/ticker/bookTicker", "/api/v3/depth", "/api/v3/exchangeInfo",
    ):  # fmt: skip
        assert path in paths
    assert client.get("/docs").status_code == 200
    msgspec.json.decode(client.get("/openapi.json").content)


def test_extra_routers_get_the_same_guards(store: EmbeddedStore) -> None:
    from fastapi import APIRouter

    extra = APIRouter(prefix="/api/v1/extra")

    @extra.get("/daily")
    def daily() -> list[dict[str, int]]:
        return [{"day": 1}]

    settings = ApiSettings(token="t0k", rate_limit="100/minute")  # type: ignore[arg-type]
    app = TestClient(create_app(embedded_backend(store, healthy), settings, [extra]))
    assert app.get("/api/v1/extra/daily").status_code == 401
    ok = app.get("/api/v1/extra/daily", headers={"Authorization": "Bearer t0k"})
    assert ok.json() == [{"day": 1}] and ok.headers["X-RateLimit-Limit"] == "100"


def test_reused_klines_are_dropped_by_the_next_commit(store: EmbeddedStore) -> None:
    backend = embedded_backend(store, healthy)
    version = [1]
    backend.version = lambda: version[0]
    calls: list[int] = []
    real = backend.router.candles

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    backend.router.candles = counting  # type: ignore[method-assign]
    app = TestClient(create_app(backend))
    params = {"symbol": "BTCUSDT", "interval": "1m", "limit": "3"}
    first = app.get("/api/v3/klines", params=params)
    reads = len(calls)
    again = app.get("/api/v3/klines", params=params)
    assert again.content == first.content and len(calls) == reads  # reused: no storage read
    assert again.headers["X-RateLimit-Remaining"] < first.headers["X-RateLimit-Remaining"]
    version[0] = 2  # a commit
    app.get("/api/v3/klines", params=params)
    assert len(calls) > reads
