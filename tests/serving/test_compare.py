"""`GET /api/v1/market/compare`: one asset on every venue, checked against prices computed here
from the captured trades the store was filled with."""

import statistics
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from marketpipe.model.records import Quote
from marketpipe.serving.app import create_app
from marketpipe.serving.backend import embedded_backend
from marketpipe.serving.compare import VenuePrice, comparison, venue_prices
from marketpipe.serving.market import MarketView
from marketpipe.serving.settings import ApiSettings
from marketpipe.storage.embedded import EmbeddedStore
from tests.serving.venues import T0, TRADES, venues_data_dir


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStore]:
    opened = EmbeddedStore(venues_data_dir(tmp_path_factory.mktemp("venues")), read_only=True)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(scope="module")
def client(store: EmbeddedStore) -> Iterator[TestClient]:
    backend = embedded_backend(store, lambda: {"status": "ok"})
    with TestClient(create_app(backend, ApiSettings())) as test_client:
        yield test_client


@pytest.fixture
def view(store: EmbeddedStore) -> MarketView:
    """The view the routes read, called here directly (not on the app's worker thread)."""
    return MarketView(embedded_backend(store, lambda: {"status": "ok"}))


def _expected_minute(trades: list[tuple[float, float, int]]) -> tuple[float, float]:
    """VWAP and volume of the newest minute, from the raw trades."""
    newest = max(seconds for _, _, seconds in trades) // 60
    inside = [(p, q) for p, q, s in trades if s // 60 == newest]
    volume = sum(q for _, q in inside)
    return sum(p * q for p, q in inside) / volume, volume


def test_every_dollar_venue_of_the_asset_with_its_last_price_and_minute(
    client: TestClient,
) -> None:
    body = client.get("/api/v1/market/compare", params={"base": "btc"}).json()
    assert body["base"] == "BTC"
    venues = {(v["exchange"], v["symbol"]): v for v in body["venues"]}
    assert set(venues) == {("binance", "BTC-USDT"), ("coinbase", "BTC-USD"), ("kraken", "BTC-USD")}
    for exchange, symbol, trades in TRADES[:3]:
        row = venues[(exchange, symbol)]
        assert row["last_price"] == trades[-1][0]
        vwap, volume = _expected_minute(trades)
        assert row["vwap_1m"] == pytest.approx(vwap, rel=1e-12)
        assert row["volume_1m"] == pytest.approx(volume, rel=1e-12)
        assert row["minute"] == "2024-08-09T00:01:00Z"
    lasts = [t[-1][0] for _, _, t in TRADES[:3]]  # 61020, 61050, 61000
    median = statistics.median(lasts)
    assert body["median_price"] == median
    assert body["spread_bps"] == pytest.approx((61_050 - 61_000) / median * 1e4, abs=1e-4)
    # Each venue against the median of the others: Coinbase is 61050 vs median(61020, 61000).
    assert venues[("coinbase", "BTC-USD")]["vs_others_bps"] == pytest.approx(
        (61_050 - 61_010) / 61_010 * 1e4, abs=1e-4
    )
    assert venues[("kraken", "BTC-USD")]["vs_others_bps"] < 0


def test_one_quote_can_be_asked_for(client: TestClient) -> None:
    body = client.get("/api/v1/market/compare", params={"base": "BTC", "quote": "EUR"}).json()
    assert [(v["exchange"], v["last_price"]) for v in body["venues"]] == [("kraken", 56_000.0)]
    assert body["spread_bps"] == 0.0
    assert body["venues"][0]["vs_others_bps"] is None  # no other venue to compare with


def test_an_asset_no_venue_trades_is_a_404_naming_the_bases_there_are(client: TestClient) -> None:
    response = client.get("/api/v1/market/compare", params={"base": "DOGE"})
    assert response.status_code == 404
    assert "no venue has traded DOGE" in response.text and "BTC, ETH" in response.text
    assert client.get("/api/v1/market/compare", params={"base": "BT C"}).status_code == 422
    assert client.get("/api/v1/market/compare").status_code == 422


def _price(exchange: str, bid: float | None, ask: float | None, last: float = 100.0) -> VenuePrice:
    return VenuePrice(exchange, "X-USD", last, T0, bid, ask, None, None, None)


def test_best_bid_and_ask_ties_go_to_the_first_venue_by_name() -> None:
    body = comparison(
        "x",
        [_price("kraken", 99.0, 101.0), _price("binance", 99.0, 101.0), _price("c", None, None)],
    )
    assert body["best_bid"] == {"exchange": "binance", "price": 99.0}
    assert body["best_ask"] == {"exchange": "binance", "price": 101.0}
    assert body["cross_bps"] == pytest.approx((99.0 - 101.0) / 101.0 * 1e4, abs=1e-4)


def test_a_crossed_market_across_venues_is_a_positive_cross() -> None:
    body = comparison("x", [_price("a", 100.5, 101.0), _price("b", 99.0, 100.0)])
    assert body["best_bid"]["exchange"] == "a" and body["best_ask"]["exchange"] == "b"
    assert body["cross_bps"] == pytest.approx(50.0, abs=1e-4)


def test_without_quotes_there_is_no_best_side_and_no_cross() -> None:
    body = comparison("x", [_price("a", None, None), _price("b", None, None, 102.0)])
    assert body["best_bid"] is None and body["best_ask"] is None and body["cross_bps"] is None
    assert body["spread_bps"] == pytest.approx(2 / 101 * 1e4, abs=1e-4)


def test_venue_prices_read_each_venues_own_newest_trade_candle_and_quote(
    view: MarketView, monkeypatch: pytest.MonkeyPatch
) -> None:
    quote = Quote("kraken", "BTC-USD", 60_999.0, 1.0, 61_001.0, 2.0, T0, T0)
    monkeypatch.setattr(view, "quotes", lambda: {("kraken", "BTC-USD"): quote})
    prices = {(p.exchange, p.symbol): p for p in venue_prices(view, "BTC")}
    assert list(prices) == [("binance", "BTC-USDT"), ("coinbase", "BTC-USD"), ("kraken", "BTC-USD")]
    kraken = prices[("kraken", "BTC-USD")]
    assert (kraken.bid, kraken.ask, kraken.last, kraken.last_time) == (
        60_999.0, 61_001.0, 61_000.0, T0 + 65_000_000,
    )  # fmt: skip
    assert prices[("binance", "BTC-USDT")].bid is None  # no quote: no bid, no ask
    assert prices[("binance", "BTC-USDT")].ask is None
    for exchange, symbol, trades in TRADES[:3]:
        vwap, volume = _expected_minute(trades)
        got = prices[(exchange, symbol)]
        assert (got.vwap_1m, got.volume_1m, got.minute) == (
            pytest.approx(vwap, rel=1e-12), pytest.approx(volume, rel=1e-12), T0 + 60_000_000,
        )  # fmt: skip
    assert [p.symbol for p in venue_prices(view, "BTC", "eur")] == ["BTC-EUR"]
    assert [p.exchange for p in venue_prices(view, "eth")] == ["coinbase"]
    assert venue_prices(view, "USD") == []  # a quote is not a base


def test_the_body_names_every_field_a_client_reads(client: TestClient) -> None:
    body = client.get("/api/v1/market/compare", params={"base": "BTC"}).json()
    assert set(body) == {
        "base", "venues", "median_price", "spread_bps", "best_bid", "best_ask", "cross_bps",
        "market_cap", "market",  # null here: this backend stores no market data
    }  # fmt: skip
    assert body["market_cap"] is None and body["market"] is None
    assert set(body["venues"][0]) == {
        "exchange", "symbol", "last_price", "last_trade_time", "bid", "ask", "vwap_1m",
        "volume_1m", "minute", "vs_others_bps",
    }  # fmt: skip
    assert body["venues"][0]["last_trade_time"] == "2024-08-09T00:01:15Z"


def test_bps_are_rounded_to_four_places() -> None:
    body = comparison("x", [_price("a", None, None, 100.0), _price("b", None, None, 100.0001234)])
    assert body["spread_bps"] == round(0.0001234 / 100.00006170 * 1e4, 4) == 0.0123


def test_a_missing_side_on_either_best_venue_gives_no_cross() -> None:
    only_bid = comparison("x", [_price("a", 100.0, None), _price("b", None, None)])
    assert only_bid["best_bid"] == {"exchange": "a", "price": 100.0}
    assert only_bid["best_ask"] is None and only_bid["cross_bps"] is None
    only_ask = comparison("x", [_price("a", None, 100.0)])
    assert only_ask["best_bid"] is None and only_ask["cross_bps"] is None


def test_the_best_bid_is_the_highest_whatever_the_names() -> None:
    body = comparison("x", [_price("a", 99.0, 100.0), _price("b", 100.5, 101.0)])
    assert body["best_bid"] == {"exchange": "b", "price": 100.5}
    assert body["best_ask"] == {"exchange": "a", "price": 100.0}


def test_a_real_binance_client_reads_another_venues_candles(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from binance.spot import Spot  # binance-connector, Binance's own Python client

    from tests.serving.conftest import serving

    root = tmp_path_factory.mktemp("served-venues")
    with serving(venues_data_dir(root), root) as base:
        client = Spot(base_url=base, timeout=30)
        # Binance's concatenated spelling of Kraken's BTC/USD, with the venue named.
        klines = client.klines("BTCUSD", "1m", exchange="kraken")
        info = httpx.get(f"{base}/api/v3/exchangeInfo", params={"exchange": "kraken"}).json()
        coinbase = client.klines("BTCUSD", "1m", exchange="coinbase")
    kraken = TRADES[2][2]  # (61030, 0.25, 10 s), (61000, 0.75, 65 s)
    assert [(k[0], float(k[1]), float(k[5]), k[8]) for k in klines] == [
        (T0 // 1000, kraken[0][0], kraken[0][1], 1),
        (T0 // 1000 + 60_000, kraken[1][0], kraken[1][1], 1),
    ]
    assert [float(k[4]) for k in coinbase] == [60_990.0, 61_050.0]
    assert sorted(s["symbol"] for s in info["symbols"]) == ["BTCEUR", "BTCUSD"]
