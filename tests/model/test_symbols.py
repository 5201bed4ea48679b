import pytest

from marketpipe.model.symbols import (
    Instrument,
    SymbolMap,
    comparable_asset,
    equity_symbol,
    equity_ticker,
    instrument,
    is_ticker,
    normalize,
    symbol_kind,
    to_native,
)


@pytest.mark.parametrize("text", ["BTCUSDT", "btcusdt", "BTC-USDT", "BTC/USDT", " btc_usdt "])
def test_common_spellings_normalize_to_base_dash_quote(text: str) -> None:
    assert normalize(text) == "BTC-USDT"
    assert to_native(text) == "BTCUSDT"


def test_exchange_info_decides_ambiguous_splits() -> None:
    symbols = SymbolMap.from_exchange_info(
        [{"symbol": "WBTCBTC", "baseAsset": "WBTC", "quoteAsset": "BTC"}]
    )
    assert symbols.normalize("WBTCBTC") == "WBTC-BTC"
    assert symbols.native("WBTC-BTC") == "WBTCBTC"


@pytest.mark.parametrize("text", ["", "-", "USDT", "FOO"])
def test_unsplittable_symbols_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        normalize(text)


# -- equities -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["AAPL", "aapl", " AAPL ", "AAPL-USD", "aapl-usd"])
def test_a_ticker_in_any_spelling_is_the_equity_aapl_usd(text: str) -> None:
    assert equity_symbol(text) == "AAPL-USD"
    assert equity_ticker(text) == "AAPL"


def test_a_share_class_keeps_its_dot_both_ways() -> None:
    assert equity_symbol("brk.b") == "BRK.B-USD"
    assert equity_ticker("BRK.B-USD") == "BRK.B"


@pytest.mark.parametrize("text", ["", "1AAPL", "AAPL-USDT", "BTC/USD", "A" * 16, ".B", "AA PL"])
def test_what_is_not_a_ticker_is_rejected_with_its_spelling(text: str) -> None:
    with pytest.raises(ValueError, match="not a US stock ticker"):
        equity_symbol(text)


def test_sixteen_characters_is_one_past_the_longest_ticker() -> None:
    assert equity_symbol("A" * 15) == "A" * 15 + "-USD"
    assert not is_ticker("A" * 16)


def test_the_venue_decides_the_kind_of_a_symbol() -> None:
    assert symbol_kind("finnhub") == "equity" and symbol_kind("FINNHUB") == "equity"
    assert symbol_kind("binance") == "pair" and symbol_kind(None) == "pair"
    assert instrument("AAPL", "finnhub") == Instrument("AAPL", "USD", "equity")
    assert instrument("AAPL-USD", "finnhub").symbol == "AAPL-USD"
    assert instrument("BTCUSDT", "binance") == Instrument("BTC", "USDT", "pair")
    with pytest.raises(ValueError):
        instrument("AAPL", "binance")  # a bare ticker is no pair


def test_dollar_pairs_compare_as_one_asset_and_other_quotes_stay_apart() -> None:
    assert comparable_asset("BTC-USDT", "binance") == "BTC-USD"
    assert comparable_asset("BTC-USD", "coinbase") == "BTC-USD"
    assert comparable_asset("BTC-USD") == "BTC-USD"
    assert comparable_asset("BTC-EUR", "kraken") == "BTC-EUR"
    assert comparable_asset("BTC", "binance") is None
    assert comparable_asset("-USD") is None and comparable_asset("BTC-") is None


def test_an_equity_is_never_compared_with_a_crypto_of_the_same_ticker() -> None:
    stock = comparable_asset("AAPL-USD", "finnhub")
    assert stock == "equity:AAPL-USD"
    assert stock != comparable_asset("AAPL-USD", "binance") == "AAPL-USD"
    assert stock != comparable_asset("AAPL-USDT", "binance")
    assert comparable_asset("MSFT-USD", "finnhub") == "equity:MSFT-USD" != stock
    assert instrument("AAPL", "finnhub").usd_like
    assert comparable_asset("not a ticker-USD", "finnhub") is None
