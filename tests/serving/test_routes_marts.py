"""`/api/v1/analytics/*` over a marts file: filters, ordering, and clear errors."""

from pathlib import Path

import duckdb
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from marketpipe.serving.routes_marts import DuckDBMarts, marts_router

pytestmark = pytest.mark.unit


def client(data_dir: Path | None) -> TestClient:
    app = FastAPI()
    app.include_router(marts_router())
    if data_dir is not None:
        app.state.marts = DuckDBMarts(data_dir)
    return TestClient(app)


@pytest.fixture
def marts_dir(tmp_path: Path) -> Path:
    con = duckdb.connect(str(tmp_path / "analytics.duckdb"))
    con.execute("CREATE SCHEMA marts")
    con.execute(
        "CREATE TABLE marts.trading_summary_daily (exchange VARCHAR, symbol VARCHAR, "
        "trade_date DATE, day_start TIMESTAMPTZ, close_price DOUBLE)"
    )
    con.execute(
        "INSERT INTO marts.trading_summary_daily VALUES "
        "('binance', 'BTC-USDT', '2024-08-08', '2024-08-08 00:00:00+00', 61685.99), "
        "('binance', 'BTC-USDT', '2024-08-09', '2024-08-09 00:00:00+00', 61602.02), "
        "('binance', 'ETH-USDT', '2024-08-09', '2024-08-09 00:00:00+00', 2600.5)"
    )
    con.execute(
        "CREATE TABLE marts.market_overview (exchange VARCHAR, symbol VARCHAR, volume_rank BIGINT)"
    )
    con.execute(
        "INSERT INTO marts.market_overview VALUES ('binance', 'ETH-USDT', 2), "
        "('binance', 'BTC-USDT', 1)"
    )
    con.close()
    return tmp_path


def test_daily_summary_filters_by_symbol_in_any_spelling_and_inclusive_days(
    marts_dir: Path,
) -> None:
    response = client(marts_dir).get(
        "/api/v1/analytics/summary/daily",
        params={"symbol": "BTCUSDT", "start": "2024-08-09", "end": "2024-08-09"},
    )
    assert response.status_code == 200
    assert response.json() == [
        {
            "exchange": "binance",
            "symbol": "BTC-USDT",
            "trade_date": "2024-08-09",
            "day_start": "2024-08-09T00:00:00Z",
            "close_price": 61602.02,
        }
    ]
    assert response.headers["X-Marts-Built-At"].endswith("Z")


def test_daily_summary_without_filters_lists_every_row_in_date_order(marts_dir: Path) -> None:
    rows = client(marts_dir).get("/api/v1/analytics/summary/daily").json()
    assert [(r["trade_date"], r["symbol"]) for r in rows] == [
        ("2024-08-08", "BTC-USDT"),
        ("2024-08-09", "BTC-USDT"),
        ("2024-08-09", "ETH-USDT"),
    ]


def test_market_overview_is_ordered_by_rank(marts_dir: Path) -> None:
    rows = client(marts_dir).get("/api/v1/analytics/market-overview").json()
    assert [r["symbol"] for r in rows] == ["BTC-USDT", "ETH-USDT"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "yesterday"}, "not a date"),
        ({"start": "2024-08-09", "end": "2024-08-08"}, "start must not be after end"),
        ({"symbol": "???"}, ""),
    ],
)
def test_bad_parameters_are_400(marts_dir: Path, params: dict[str, str], message: str) -> None:
    response = client(marts_dir).get("/api/v1/analytics/summary/daily", params=params)
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_before_the_first_build_the_answer_is_503_and_says_why(tmp_path: Path) -> None:
    response = client(tmp_path).get("/api/v1/analytics/market-overview")
    assert response.status_code == 503
    assert "scheduler builds the marts" in response.json()["detail"]
    unwired = client(None).get("/api/v1/analytics/market-overview")
    assert unwired.status_code == 503


def test_cross_venue_marts_by_asset_in_either_spelling(marts_dir: Path) -> None:
    con = duckdb.connect(str(marts_dir / "analytics.duckdb"))
    con.execute(
        "CREATE TABLE marts.cross_venue_hourly (asset VARCHAR, hour_start TIMESTAMPTZ, "
        "spread_bps DOUBLE)"
    )
    con.execute(
        "INSERT INTO marts.cross_venue_hourly VALUES "
        "('BTC-USD', '2024-08-09 01:00:00+00', 3.5), ('BTC-USD', '2024-08-09 00:00:00+00', 2.0), "
        "('BTC-EUR', '2024-08-09 00:00:00+00', 0.0)"
    )
    con.execute(
        "CREATE TABLE marts.cross_venue_volume_share_hourly (asset VARCHAR, "
        "hour_start TIMESTAMPTZ, exchange VARCHAR, volume_share DOUBLE)"
    )
    con.execute(
        "INSERT INTO marts.cross_venue_volume_share_hourly VALUES "
        "('BTC-USD', '2024-08-09 00:00:00+00', 'kraken', 0.25), "
        "('BTC-USD', '2024-08-09 00:00:00+00', 'coinbase', 0.75)"
    )
    con.close()
    c = client(marts_dir)
    rows = c.get("/api/v1/analytics/cross-venue/hourly", params={"asset": "btc"}).json()
    assert [(r["hour_start"], r["spread_bps"]) for r in rows] == [
        ("2024-08-09T00:00:00Z", 2.0), ("2024-08-09T01:00:00Z", 3.5),
    ]  # fmt: skip
    eur = c.get("/api/v1/analytics/cross-venue/hourly", params={"asset": "BTC-EUR"}).json()
    assert [r["spread_bps"] for r in eur] == [0.0]
    assert len(c.get("/api/v1/analytics/cross-venue/hourly").json()) == 3
    shares = c.get(
        "/api/v1/analytics/cross-venue/hourly", params={"asset": "BTC-USD", "shares": "true"}
    ).json()
    assert [(r["exchange"], r["volume_share"]) for r in shares] == [
        ("coinbase", 0.75), ("kraken", 0.25),
    ]  # fmt: skip
    bad = c.get("/api/v1/analytics/cross-venue/hourly", params={"asset": "BTC;DROP"})
    assert bad.status_code == 400 and "BASE-QUOTE" in bad.text


def test_market_cap_mart_by_coin_in_any_spelling_and_by_whole_utc_days(marts_dir: Path) -> None:
    con = duckdb.connect(str(marts_dir / "analytics.duckdb"))
    con.execute(
        "CREATE TABLE marts.volume_share_of_market_cap_hourly (data_source VARCHAR, "
        "asset VARCHAR, hour_start TIMESTAMPTZ, market_cap DOUBLE, "
        "volume_share_of_market_cap DOUBLE)"
    )
    con.execute(
        "INSERT INTO marts.volume_share_of_market_cap_hourly VALUES "
        "('coingecko', 'BTC', '2024-08-09 00:00:00+00', NULL, NULL), "
        "('coingecko', 'BTC', '2024-08-08 23:00:00+00', 1.225e12, 2.5e-7), "
        "('coingecko', 'ETH', '2024-08-08 23:00:00+00', 3.1e11, 1e-7), "
        "('coingecko', 'BTC', '2024-08-10 00:00:00+00', 1.23e12, 1e-7)"
    )
    con.close()
    c = client(marts_dir)
    path = "/api/v1/analytics/market-cap/hourly"
    for spelling in ("btc", "BTCUSDT", "BTC-USD"):
        rows = c.get(path, params={"asset": spelling, "end": "2024-08-09"}).json()
        assert [(r["hour_start"], r["market_cap"]) for r in rows] == [
            ("2024-08-08T23:00:00Z", 1.225e12), ("2024-08-09T00:00:00Z", None),
        ], spelling  # fmt: skip
    # A day is inclusive: 2024-08-09 holds its 00:00 hour, not the next day's.
    day = c.get(path, params={"start": "2024-08-09", "end": "2024-08-09"}).json()
    assert [(r["asset"], r["hour_start"]) for r in day] == [("BTC", "2024-08-09T00:00:00Z")]
    # Every coin, ordered by hour then coin.
    assert [r["asset"] for r in c.get(path).json()] == ["BTC", "ETH", "BTC", "BTC"]
    assert c.get(path, params={"asset": "BTC;DROP"}).status_code == 400
    assert c.get(path, params={"start": "2024-08-10", "end": "2024-08-09"}).status_code == 400
