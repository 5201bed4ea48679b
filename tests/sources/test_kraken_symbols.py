"""Kraken's pair spellings (v2 `BTC/USD`, v1 `XBT/USD`, REST `XBTUSD` / `XXBTZUSD`) both ways."""

import pytest

from marketpipe.sources.kraken.symbols import canonical, from_rest, from_ws, to_rest, to_ws

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("ours", "ws", "rest"),
    [
        ("BTC-USD", "BTC/USD", "XBTUSD"),
        ("ETH-BTC", "ETH/BTC", "ETHXBT"),
        ("DOGE-USD", "DOGE/USD", "XDGUSD"),
        ("SOL-EUR", "SOL/EUR", "SOLEUR"),
        ("USDT-USD", "USDT/USD", "USDTUSD"),
    ],
)
def test_ours_to_ws_and_rest_and_back(ours: str, ws: str, rest: str) -> None:
    assert (to_ws(ours), to_rest(ours)) == (ws, rest)
    assert from_ws(ws) == from_rest(rest) == canonical(ours) == ours


@pytest.mark.parametrize(
    ("name", "ours"),
    [
        ("XXBTZUSD", "BTC-USD"),
        ("XETHZEUR", "ETH-EUR"),
        ("XETHXXBT", "ETH-BTC"),
        ("XXMRZUSD", "XMR-USD"),
        ("ZEURZUSD", "EUR-USD"),
        ("XTZUSD", "XTZ-USD"),  # Tezos: an X that is no class prefix
        ("KSMXBT", "KSM-BTC"),
        ("USDCUSDT", "USDC-USDT"),
    ],
)
def test_rest_result_keys_map_to_ours(name: str, ours: str) -> None:
    assert from_rest(name) == ours


def test_v1_spellings_map_to_the_common_codes() -> None:
    assert from_ws("XBT/USD") == from_ws("BTC/USD") == "BTC-USD"
    assert from_ws("XDG/EUR") == "DOGE-EUR"
    assert canonical("xbt-usd") == canonical("XBTUSD") == "BTC-USD"


@pytest.mark.parametrize("bad", ["BTCUSD", "BTC/USD/EUR", "/USD", "BTC/"])
def test_malformed_ws_pairs_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        from_ws(bad)


def test_unsplittable_rest_name_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot split"):
        from_rest("FOOBAR")
