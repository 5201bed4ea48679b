"""One market, many venues: shared fair value, own trades and ids, divergence episodes."""

from __future__ import annotations

import numpy as np
import pytest

from marketpipe.simulator.columns import TradeColumns
from marketpipe.simulator.divergence import Divergence
from marketpipe.simulator.listings import listing, listing_spec, native_spelling
from marketpipe.simulator.multivenue import MultiVenueMarket

pytestmark = pytest.mark.unit

START_US = 1_700_000_000_000_000
LISTINGS = {
    "binance": ["BTC-USDT", "ETH-USDT"],
    "coinbase": ["BTC-USD", "ETH-USD"],
    "kraken": ["BTC-USD", "ETH-USD"],
}


def _run(
    seconds: float, divergences: list[Divergence] | None = None
) -> tuple[MultiVenueMarket, dict[str, TradeColumns]]:
    market = MultiVenueMarket(LISTINGS, 40, 7, START_US, divergences=divergences or [])
    cols = {v: market.market(v).advance_columns(START_US + int(seconds * 1e6)) for v in LISTINGS}
    return market, cols


def _bps_from_fair(
    market: MultiVenueMarket, cols: TradeColumns, asset: str
) -> tuple[np.ndarray, np.ndarray]:
    symbol = 0 if asset == "BTC" else 1
    sel = cols.symbol_idx == symbol
    ts = cols.ts_us[sel]
    price = cols.price[sel]
    return ts, (price / market.fair_price(asset, ts) - 1.0) * 1e4


def test_each_venue_spells_the_pair_its_own_way() -> None:
    assert native_spelling("binance", "BTC-USDT") == "BTCUSDT"
    assert native_spelling("coinbase", "btc/usd") == "BTC-USD"
    assert native_spelling("kraken", "BTCUSD") == "BTC/USD"
    market = MultiVenueMarket(LISTINGS, 10, 1, START_US)
    assert [s.native for s in market.market("kraken").specs] == ["BTC/USD", "ETH/USD"]
    assert [s.native for s in market.market("binance").specs] == ["BTCUSDT", "ETHUSDT"]
    assert listing("binance", "BTCUSDT").asset == listing("kraken", "BTC/USD").asset == "BTC"


def test_kraken_btc_ticks_a_dime_and_coinbase_lots_are_satoshis() -> None:
    kraken = listing_spec(listing("kraken", "BTC-USD"))
    coinbase = listing_spec(listing("coinbase", "BTC-USD"))
    assert (kraken.tick, kraken.step) == (0.1, 1e-8)
    assert (coinbase.tick, coinbase.step) == (0.01, 1e-8)


def test_finnhub_lists_stocks_as_equities_spelt_by_ticker() -> None:
    for text in ("AAPL", "aapl", "AAPL-USD"):
        item = listing("finnhub", text)
        assert (item.symbol, item.native, item.asset, item.kind) == (
            "AAPL-USD",
            "AAPL",
            "AAPL",
            "stock",
        )
        assert item.fair_key == "stock:AAPL"
    assert listing("binance", "BTCUSDT").fair_key == "BTC"
    spec = listing_spec(listing("finnhub", "MSFT"))
    assert (spec.native, spec.tick, spec.step, spec.start_price) == ("MSFT", 0.01, 1.0, 420.0)


def test_a_stock_on_a_crypto_venue_or_a_pair_on_finnhub_is_refused() -> None:
    with pytest.raises(ValueError, match="binance lists crypto pairs, not the stock 'AAPL'"):
        listing("binance", "AAPL", kind="stock")
    with pytest.raises(ValueError, match="not a US stock ticker"):
        listing("finnhub", "BTC-USDT")
    with pytest.raises(ValueError, match="finnhub lists stocks"):
        listing("finnhub", "AAPL", kind="crypto")


def test_a_stock_never_shares_a_fair_value_with_a_crypto_of_its_ticker() -> None:
    market = MultiVenueMarket({"binance": ["AAPL-USDT"], "finnhub": ["AAPL"]}, 40, 7, START_US)
    end = START_US + 30_000_000
    crypto = market.market("binance").advance_columns(end)
    stock = market.market("finnhub").advance_columns(end)
    assert {t.symbol for t in stock.to_trades()} == {"AAPL-USD"}
    ts = stock.ts_us
    assert np.allclose(stock.price, market.fair_price("stock:AAPL", ts), rtol=0.002)
    assert not np.allclose(
        crypto.price[:10], market.fair_price("stock:AAPL", crypto.ts_us[:10]), rtol=0.05
    )
    assert np.allclose(
        market.venue_price("finnhub", "AAPL", ts), market.fair_price("stock:AAPL", ts), rtol=4e-4
    )


def test_stock_trades_are_whole_shares_in_cents_at_whole_milliseconds_with_twins() -> None:
    market = MultiVenueMarket({"finnhub": ["AAPL", "MSFT"]}, 60, 7, START_US)
    cols = market.market("finnhub").advance_columns(START_US + 60_000_000)
    trades = cols.to_trades()
    assert len(trades) > 1000 and {t.exchange for t in trades} == {"finnhub"}
    assert all(t.qty == int(t.qty) >= 1 and round(t.price * 100) == t.price * 100 for t in trades)
    assert all(t.ts_event % 1000 == 0 for t in trades)
    # Equal price, size and time: two real trades the id-less venue must keep apart.
    rows = [(t.symbol, t.price, t.qty, t.ts_event) for t in trades]
    assert len(set(rows)) < len(rows) - 50


def test_every_venue_has_its_own_trades_ids_and_exchange_name() -> None:
    _, cols = _run(30)
    ids = {v: set(c.trade_id.tolist()) for v, c in cols.items()}
    assert all(len(i) > 500 for i in ids.values())
    assert not ids["binance"] & ids["coinbase"] and not ids["coinbase"] & ids["kraken"]
    for venue, c in cols.items():
        trades = c.to_trades()
        assert {t.exchange for t in trades} == {venue}
        btc = [t.trade_id for t in trades if t.symbol.startswith("BTC")]
        assert btc == list(range(btc[0], btc[0] + len(btc)))  # consecutive per symbol
    # Binance prints whole milliseconds; the others microseconds.
    assert (cols["binance"].ts_us % 1000 == 0).all()
    assert (cols["kraken"].ts_us % 1000 != 0).mean() > 0.9


def test_same_seed_same_trades_on_every_venue() -> None:
    _, a = _run(10)
    _, b = _run(10)
    for venue in LISTINGS:
        assert np.array_equal(a[venue].price_units, b[venue].price_units)
        assert np.array_equal(a[venue].trade_id, b[venue].trade_id)


def test_without_a_scenario_venues_stay_within_a_few_bps_of_fair_value() -> None:
    market, cols = _run(300)
    for venue, c in cols.items():
        for asset in ("BTC", "ETH"):
            _, bps = _bps_from_fair(market, c, asset)
            # basis clipped at 3 bps, plus one tick and the odd sweep
            assert np.abs(bps).max() < 6.0, (venue, asset, np.abs(bps).max())
    # Venue against venue: per-second last prices within a few bps of each other.
    last = {}
    for venue, c in cols.items():
        ts, _ = _bps_from_fair(market, c, "BTC")
        sel = c.symbol_idx == 0
        seconds = (ts - START_US) // 1_000_000
        price = c.price[sel]
        last[venue] = {int(s): float(p) for s, p in zip(seconds, price, strict=True)}
    common = set.intersection(*(set(d) for d in last.values()))
    spreads = [
        (max(d[s] for d in last.values()) / min(d[s] for d in last.values()) - 1) * 1e4
        for s in common
    ]
    assert len(common) > 250 and max(spreads) < 10.0


def test_a_divergence_moves_exactly_one_venue_for_exactly_its_window() -> None:
    episode = Divergence("kraken", "BTC", bps=80.0, start_s=40.0, duration_s=25.0)
    market, cols = _run(120, divergences=[episode])
    start, end = episode.window_us(START_US)
    assert (start, end) == (START_US + 40_000_000, START_US + 65_000_000)
    for venue, c in cols.items():
        for asset in ("BTC", "ETH"):
            ts, bps = _bps_from_fair(market, c, asset)
            inside = (ts >= start) & (ts < end)
            assert inside.sum() > 50 and (~inside).sum() > 100
            assert np.abs(bps[~inside]).max() < 6.0
            if (venue, asset) == ("kraken", "BTC"):
                assert np.abs(bps[inside] - 80.0).max() < 6.0
            else:
                assert np.abs(bps[inside]).max() < 6.0


def test_a_divergence_of_the_same_seed_leaves_the_other_venues_unchanged() -> None:
    _, plain = _run(60)
    _, moved = _run(60, divergences=[Divergence("coinbase", "ETH", -50.0, 10.0, 10.0)])
    for venue in ("binance", "kraken"):
        assert np.array_equal(plain[venue].price_units, moved[venue].price_units)
    assert not np.array_equal(plain["coinbase"].price_units, moved["coinbase"].price_units)


def test_a_divergence_on_an_unlisted_venue_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="no listings"):
        MultiVenueMarket(
            LISTINGS, 10, 1, START_US, divergences=[Divergence("okx", "BTC", 10, 0, 1)]
        )


def test_first_ids_continue_a_venues_ids() -> None:
    market = MultiVenueMarket(LISTINGS, 20, 3, START_US, first_ids={"coinbase": {"BTC-USD": 500}})
    cols = market.market("coinbase").advance_columns(START_US + 5_000_000)
    assert int(cols.trade_id[cols.symbol_idx == 0].min()) == 500
