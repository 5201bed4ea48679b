"""CoinGeckoSettings: defaults, the ticker -> id map, comma lists, the masked key."""

import pytest
from pydantic import SecretStr, ValidationError

from marketpipe.model.symbols import DEFAULT_SYMBOLS
from marketpipe.sources.coingecko.coins import COIN_IDS, coin_id
from marketpipe.sources.coingecko.settings import API_KEY_HEADER, CoinGeckoSettings


def test_defaults_cover_every_default_pair_base_btc_and_eth_first() -> None:
    settings = CoinGeckoSettings()
    assert settings.rest_url == "https://api.coingecko.com/api/v3"
    assert settings.vs_currency == "usd" and settings.poll_interval_s == 60.0
    assert settings.assets[:2] == ["BTC", "ETH"]
    bases = {symbol.split("-")[0] for symbol in DEFAULT_SYMBOLS}
    assert bases <= set(settings.assets)
    assert settings.coin_ids[:2] == ["bitcoin", "ethereum"]
    assert all(asset in COIN_IDS for asset in settings.assets)  # every one mapped


@pytest.mark.parametrize(
    ("asset", "cid"),
    [
        ("BTC", "bitcoin"),
        ("btc", "bitcoin"),
        (" XRP ", "ripple"),
        ("AVAX", "avalanche-2"),
        ("bitcoin", "bitcoin"),  # an id is taken as is
        ("Render-Token", "render-token"),
    ],
)
def test_tickers_map_to_ids_and_ids_pass_through(asset: str, cid: str) -> None:
    assert coin_id(asset) == cid


@pytest.mark.parametrize("bad", ["", "  ", "bit coin", "btc/usd", "₿"])
def test_a_name_no_coingecko_id_can_be_fails_naming_it(bad: str) -> None:
    with pytest.raises(ValueError, match="neither a known ticker"):
        coin_id(bad)


def test_assets_take_a_comma_list_and_duplicate_ids_collapse() -> None:
    settings = CoinGeckoSettings.model_validate({"assets": "BTC, bitcoin,ETH"})
    assert settings.assets == ["BTC", "bitcoin", "ETH"]
    assert settings.coin_ids == ["bitcoin", "ethereum"]


def test_empty_assets_and_unknown_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="at least one asset"):
        CoinGeckoSettings.model_validate({"assets": ""})
    with pytest.raises(ValidationError, match="extra"):
        CoinGeckoSettings.model_validate({"poll_every": 5})
    with pytest.raises(ValidationError):
        CoinGeckoSettings.model_validate({"poll_interval_s": 0})


def test_the_key_is_sent_in_the_demo_header_only_when_set_and_masked_in_reprs() -> None:
    assert API_KEY_HEADER == "x-cg-demo-api-key"
    assert API_KEY_HEADER not in CoinGeckoSettings().headers()
    settings = CoinGeckoSettings(api_key=SecretStr("cg-secret"))
    assert settings.headers()[API_KEY_HEADER] == "cg-secret"
    assert "cg-secret" not in repr(settings) and "cg-secret" not in str(settings)
    assert "cg-secret" not in settings.model_dump_json()
