"""`GET /api/v1/market/snapshots` and the market cap in `/api/v1/market/compare`, over a Backend
whose `market` holds known CoinGecko snapshots (older ones among them, and unknown figures)."""

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import msgspec
import pytest
from fastapi.testclient import TestClient

from marketpipe.model.records import MarketSnapshot
from marketpipe.serving.app import create_app
from marketpipe.serving.backend import Backend, embedded_backend
from marketpipe.serving.market_data import latest_snapshots, requested_asset, snapshot_for
from marketpipe.serving.settings import ApiSettings
from marketpipe.storage.embedded import EmbeddedStore
from tests.serving.venues import T0, venues_data_dir

S = 1_000_000


def snap(
    asset: str, vs: str = "USD", at: int = 0, recv: int = 5, **figures: object
) -> MarketSnapshot:
    values: dict[str, object] = {
        "price": 61_000.0,
        "market_cap": 1.2e12,
        "fully_diluted_valuation": 1.28e12,
        "volume_24h": 3.1e10,
        "circulating_supply": 19_700_000.0,
        "market_cap_rank": 1,
    } | figures
    return MarketSnapshot(
        source="coingecko", asset=asset, vs_currency=vs, ts_source=T0 + at * S,
        ts_recv=T0 + (at + recv) * S, **values,  # type: ignore[arg-type]
    )  # fmt: skip


BTC_OLD = snap("BTC", at=0, price=60_000.0, market_cap=1.1e12)
BTC = snap("BTC", at=60, price=61_020.0, market_cap=1_203_456_789_012.5)
BTC_EUR = snap("BTC", vs="EUR", at=60, price=56_000.0, market_cap=1.1e12)
# Unknown figures stay null; rank 2.
ETH = snap("ETH", at=30, price=2_600.0, market_cap=312_500_000_000.0, market_cap_rank=2,
           fully_diluted_valuation=None, circulating_supply=None)  # fmt: skip
# An unranked coin whose ticker is also a quote asset: asked for as itself.
USDT = snap("USDT", at=45, price=1.0, market_cap=None, market_cap_rank=None, volume_24h=None)
STORED = [BTC_OLD, BTC, BTC_EUR, ETH, USDT]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStore]:
    opened = EmbeddedStore(venues_data_dir(tmp_path_factory.mktemp("market")), read_only=True)
    try:
        yield opened
    finally:
        opened.close()


def app_client(
    store: EmbeddedStore, market: Callable[[], list[MarketSnapshot]] | None
) -> TestClient:
    backend: Backend = dataclasses.replace(
        embedded_backend(store, lambda: {"status": "ok"}), market=market
    )
    return TestClient(create_app(backend, ApiSettings(rate_limit="100000/minute")))


@pytest.fixture(scope="module")
def client(store: EmbeddedStore) -> TestClient:
    return app_client(store, lambda: list(STORED))


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / S, UTC).isoformat().replace("+00:00", "Z")


def test_the_newest_snapshot_per_coin_and_quote_with_every_field(client: TestClient) -> None:
    response = client.get("/api/v1/market/snapshots")
    assert response.status_code == 200
    rows = response.json()
    # By rank (unranked last), then asset, source, quote; BTC_OLD is superseded.
    assert [(r["asset"], r["vs_currency"]) for r in rows] == [
        ("BTC", "EUR"), ("BTC", "USD"), ("ETH", "USD"), ("USDT", "USD"),
    ]  # fmt: skip
    btc = rows[1]
    assert btc == {
        "source": "coingecko",
        "asset": "BTC",
        "vs_currency": "USD",
        "price": 61_020.0,
        "market_cap": 1_203_456_789_012.5,
        "fully_diluted_valuation": 1.28e12,
        "volume_24h": 3.1e10,
        "circulating_supply": 19_700_000.0,
        "market_cap_rank": 1,
        "ts_source": "2024-08-09T00:01:00Z",
        "ts_recv": "2024-08-09T00:01:05Z",
    }
    assert btc["ts_source"] == _iso(BTC.ts_source)
    eth = rows[2]
    assert eth["fully_diluted_valuation"] is None and eth["circulating_supply"] is None
    assert "fully_diluted_valuation" in eth  # nulls are kept, not dropped
    assert rows[3]["market_cap"] is None and rows[3]["market_cap_rank"] is None


@pytest.mark.parametrize("spelling", ["BTC", "btc", "BTC-USD", "BTCUSDT", "btc/usdt", "BTC-EUR"])
def test_an_asset_in_any_spelling_means_its_base_coin(client: TestClient, spelling: str) -> None:
    response = client.get("/api/v1/market/snapshots", params={"asset": spelling})
    assert response.status_code == 200, response.text
    assert {(r["asset"], r["vs_currency"]) for r in response.json()} == {
        ("BTC", "USD"), ("BTC", "EUR"),
    }  # fmt: skip


def test_the_quote_and_the_source_filter_too(client: TestClient) -> None:
    rows = client.get("/api/v1/market/snapshots", params={"asset": "BTC", "vs_currency": "eur"})
    assert [r["price"] for r in rows.json()] == [56_000.0]
    none = client.get("/api/v1/market/snapshots", params={"source": "other"})
    assert none.status_code == 200 and none.json() == []


def test_a_coin_that_is_also_a_quote_is_found_as_itself(client: TestClient) -> None:
    rows = client.get("/api/v1/market/snapshots", params={"asset": "usdt"}).json()
    assert [r["asset"] for r in rows] == ["USDT"]


def test_an_unknown_asset_is_a_404_naming_the_known_ones(client: TestClient) -> None:
    response = client.get("/api/v1/market/snapshots", params={"asset": "DOGEUSDT"})
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "'DOGE'" in detail and "DOGEUSDT" in detail
    assert "BTC, ETH, USDT" in detail
    # Known coin, but not in this quote: also a 404, not an empty list.
    missing = client.get("/api/v1/market/snapshots", params={"asset": "ETH", "vs_currency": "EUR"})
    assert missing.status_code == 404


@pytest.mark.parametrize("bad", ["BTC USD", "$BTC", "-", "BTC-"])
def test_text_that_names_no_asset_is_a_clear_4xx(client: TestClient, bad: str) -> None:
    response = client.get("/api/v1/market/snapshots", params={"asset": bad})
    assert response.status_code == 400, response.text
    assert "detail" in response.json()


def test_a_backend_without_market_data_answers_503_and_one_with_none_yet_an_empty_list(
    store: EmbeddedStore,
) -> None:
    without = app_client(store, None).get("/api/v1/market/snapshots")
    assert without.status_code == 503
    assert "stores no market data" in without.json()["detail"]
    empty = app_client(store, list)
    assert empty.get("/api/v1/market/snapshots").json() == []
    assert empty.get("/api/v1/market/snapshots", params={"asset": "BTC"}).status_code == 404


def test_compare_carries_the_assets_market_cap_in_dollars(client: TestClient) -> None:
    body = client.get("/api/v1/market/compare", params={"base": "btc"}).json()
    assert body["market_cap"] == BTC.market_cap  # the USD snapshot, not EUR's, not the older
    assert body["market"]["vs_currency"] == "USD"
    assert body["market"]["market_cap_rank"] == 1
    assert body["market"]["ts_source"] == "2024-08-09T00:01:00Z"
    assert len(body["venues"]) == 3  # the venues are untouched


def test_compare_without_a_snapshot_of_the_asset_has_null_market_cap(store: EmbeddedStore) -> None:
    only_eth = app_client(store, lambda: [ETH]).get(
        "/api/v1/market/compare", params={"base": "BTC"}
    )
    assert only_eth.status_code == 200
    assert only_eth.json()["market_cap"] is None and only_eth.json()["market"] is None
    no_market = app_client(store, None).get("/api/v1/market/compare", params={"base": "BTC"})
    assert no_market.status_code == 200 and no_market.json()["market"] is None


def test_newest_wins_by_source_time_then_receipt_time() -> None:
    late_copy = msgspec.structs.replace(
        BTC_OLD, ts_recv=BTC.ts_recv + 99 * S
    )  # re-delivered old one
    assert latest_snapshots([BTC, late_copy]) == [BTC]
    tie = msgspec.structs.replace(BTC, ts_recv=BTC.ts_recv + 1, price=1.0)  # same source time
    assert latest_snapshots([tie, BTC]) == [tie]
    assert latest_snapshots([BTC, tie]) == [tie]


def test_the_dollar_snapshot_speaks_for_an_asset() -> None:
    assert snapshot_for([BTC_EUR, BTC], "btc") is BTC
    assert snapshot_for([BTC_EUR], "BTC") is BTC_EUR  # no dollars: the other quote
    assert snapshot_for([BTC], "ETH") is None
    assert requested_asset("ETH-USDT") == requested_asset("ETHUSDT") == "ETH"
    assert requested_asset("SOL") == "SOL"  # not a pair: the coin itself
