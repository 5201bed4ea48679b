"""CoinbaseSettings' defaults and limits, and how CoinbaseSpec plans its connections."""

import json

import pytest
from pydantic import ValidationError

from marketpipe.sources.coinbase.settings import CoinbaseSettings
from marketpipe.sources.coinbase.spec import CoinbaseSpec

pytestmark = pytest.mark.unit


def test_defaults_are_coinbase_exchange_endpoints_and_limits() -> None:
    settings = CoinbaseSettings()
    assert settings.ws_url == "wss://ws-feed.exchange.coinbase.com"
    assert settings.rest_url == "https://api.exchange.coinbase.com"
    assert settings.symbols == ["BTC-USD", "ETH-USD"]
    assert (settings.max_messages_per_second, settings.rest_requests_per_second) == (8.0, 10.0)
    assert settings.backfill_page_size == 1000


def test_endpoints_can_be_overridden_and_symbols_are_normalized() -> None:
    settings = CoinbaseSettings.model_validate(
        {"ws_url": "ws://127.0.0.1:1", "symbols": "btc-usd, SOL/USD,BTC-USD"}
    )
    assert settings.ws_url == "ws://127.0.0.1:1"
    assert settings.symbols == ["BTC-USD", "SOL-USD"]  # normalized, deduplicated


@pytest.mark.parametrize(
    "field",
    [
        {"max_messages_per_second": 8.5},
        {"rest_requests_per_second": 11},
        {"backfill_page_size": 1001},
        {"max_subscriptions_per_product_channel": 1},
        {"products_per_connection": 0},
        {"unknown_key": 1},
    ],
)
def test_values_beyond_the_documented_limits_fail(field: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CoinbaseSettings.model_validate(field)


def test_plan_puts_each_product_on_one_connection_with_one_subscribe() -> None:
    spec = CoinbaseSpec(CoinbaseSettings(products_per_connection=2))
    plan = spec.plan(["BTC-USD", "ETH-USD", "SOL-USD", "BTC-USD"])
    assert [(s.name, s.symbols) for s in plan] == [
        ("coinbase-ws-0", ("BTC-USD", "ETH-USD")),
        ("coinbase-ws-1", ("SOL-USD",)),
    ]
    assert all(s.url == "wss://ws-feed.exchange.coinbase.com" for s in plan)
    assert [json.loads(m) for m in plan[1].messages] == [
        {
            "type": "subscribe",
            "product_ids": ["SOL-USD"],
            "channels": ["matches", "ticker", "heartbeat"],
        }
    ]
    assert CoinbaseSpec.name == "coinbase" and CoinbaseSpec.has_trade_ids
