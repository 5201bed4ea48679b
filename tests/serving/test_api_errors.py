"""Impossible questions get a 4xx naming what does not exist; a configured symbol without data
yet is a valid question with an empty answer. /api/v3 answers with Binance's own codes."""

import pytest
from fastapi.testclient import TestClient

from marketpipe.serving.app import create_app
from marketpipe.serving.backend import embedded_backend
from marketpipe.serving.settings import ApiSettings
from marketpipe.storage.embedded import EmbeddedStore
from tests.serving.conftest import healthy

UNKNOWN_FOO = (
    "unknown symbol 'FOOUSDT'{on}: no data stored and not configured; "
    "GET /api/v1/query/positions lists the stored symbols (known: BTCUSDT{more})"
)


@pytest.fixture(scope="module")
def configured(store: EmbeddedStore) -> TestClient:
    """The replayed BTCUSDT data, with ETH-USDT configured but never ingested."""
    app = create_app(embedded_backend(store, healthy), ApiSettings(rate_limit="100000/minute"))
    app.state.view.configure_symbols(["BTC-USDT", "ETH-USDT"])
    return TestClient(app)


@pytest.mark.parametrize(
    ("path", "params", "status", "detail"),
    [
        (
            "/api/v1/analytics/klines/FOOUSDT",
            {},
            404,
            UNKNOWN_FOO.format(on=" on 'binance'", more=""),
        ),
        ("/api/v1/query/candles", {"symbol": "FOOUSDT"}, 404, UNKNOWN_FOO.format(on="", more="")),
        ("/api/v1/query/trades", {"symbol": "FOOUSDT"}, 404, UNKNOWN_FOO.format(on="", more="")),
        (
            "/api/v1/analytics/alerts",
            {"symbol": "FOOBAR"},
            404,
            "unknown symbol 'FOOBAR': no data stored and not configured; "
            "GET /api/v1/query/positions lists the stored symbols (known: BTCUSDT)",
        ),
        (
            "/api/v1/analytics/trades-count",
            {"symbol": "FOOUSDT"},
            404,
            UNKNOWN_FOO.format(on=" on 'binance'", more=""),
        ),
        (
            "/api/v1/query/trades",
            {"exchange": "kraken"},
            404,
            "unknown exchange 'kraken'; known: binance",
        ),
        (
            "/api/v1/analytics/alerts",
            {"exchange": "kraken"},
            404,
            "unknown exchange 'kraken'; known: binance",
        ),
        (
            "/api/v1/market/realtime",
            {"exchange": "kraken"},
            404,
            "unknown exchange 'kraken'; known: binance",
        ),
        (
            "/api/v1/analytics/klines/BTCUSDT",
            {"exchange": "kraken"},
            404,
            "unknown exchange 'kraken'; known: binance",
        ),
        ("/api/v1/query/candles", {"start": "2", "end": "1"}, 400, "start must be before end"),
        ("/api/v1/query/candles", {"start": "1", "end": "1"}, 400, "start must be before end"),
        (
            "/api/v1/query/candles",
            {"limit": "0"},
            422,
            "limit: Input should be greater than or equal to 1",
        ),
        (
            "/api/v1/query/candles",
            {"interval": "7m"},
            422,
            "interval: Input should be '1m', '5m', '15m', '1h', '4h' or '1d'",
        ),
    ],
)
def test_native_impossible_questions_are_4xx_naming_what_is_wrong(
    client: TestClient, path: str, params: dict[str, str], status: int, detail: str
) -> None:
    response = client.get(path, params=params)
    assert (response.status_code, response.json()) == (status, {"detail": detail})


@pytest.mark.parametrize(
    ("path", "params", "code", "msg"),
    [
        ("/api/v3/klines", {"symbol": "FOOUSDT", "interval": "1m"}, -1121, "Invalid symbol."),
        ("/api/v3/ticker/price", {"symbol": "FOOUSDT"}, -1121, "Invalid symbol."),
        ("/api/v3/trades", {"symbol": "FOOBAR"}, -1121, "Invalid symbol."),
        ("/api/v3/exchangeInfo", {"symbol": "ETHUSDT"}, -1121, "Invalid symbol."),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "7m"}, -1120, "Invalid interval."),
        (
            "/api/v3/klines",
            {"symbol": "BTCUSDT", "interval": "1m", "exchange": "kraken"},
            -1130,
            "Invalid data sent for a parameter: exchange 'kraken'.",
        ),
    ],
)
def test_binance_impossible_questions_keep_binance_codes(
    client: TestClient, path: str, params: dict[str, str], code: int, msg: str
) -> None:
    response = client.get(path, params=params)
    assert (response.status_code, response.json()) == (400, {"code": code, "msg": msg})


def test_a_configured_symbol_without_data_is_an_empty_answer(configured: TestClient) -> None:
    klines = configured.get("/api/v1/analytics/klines/ETHUSDT")
    assert klines.status_code == 200 and klines.json()["candles"] == []
    assert configured.get("/api/v1/query/trades", params={"symbol": "ETH-USDT"}).json() == []
    assert configured.get("/api/v1/analytics/alerts", params={"symbol": "ETHUSDT"}).json() == []
    v3 = configured.get("/api/v3/klines", params={"symbol": "ETHUSDT", "interval": "1m"})
    assert (v3.status_code, v3.json()) == (200, [])
    # ... and the unknown one still names what is known, configured symbols included
    unknown = configured.get("/api/v1/query/candles", params={"symbol": "FOOUSDT"})
    assert unknown.status_code == 404
    assert unknown.json()["detail"].endswith("(known: BTCUSDT, ETHUSDT)")
