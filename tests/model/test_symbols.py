import pytest

from marketpipe.model.symbols import SymbolMap, normalize, to_native


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
