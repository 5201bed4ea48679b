"""KrakenSpec and KrakenSettings: defaults, symbol spelling, subscriptions, parse hooks."""

import json

import pytest
from pydantic import ValidationError

from marketpipe.model.records import Trade
from marketpipe.sources.kraken.frames import ArrivalKeys
from marketpipe.sources.kraken.settings import KrakenSettings
from marketpipe.sources.kraken.spec import KrakenSpec

pytestmark = pytest.mark.unit


def test_spec_is_constructible_from_default_settings() -> None:
    spec = KrakenSpec(KrakenSettings())
    assert (spec.name, spec.has_trade_ids) == ("kraken", True)
    s = spec.settings
    assert (s.ws_url, s.rest_url) == ("wss://ws.kraken.com/v2", "https://api.kraken.com")
    assert s.symbols == ["BTC-USD", "ETH-USD"]


def test_settings_take_any_spelling_and_env_lists() -> None:
    assert KrakenSettings(symbols="XBT/USD, btc-usd,ETH/XBT").symbols == ["BTC-USD", "ETH-BTC"]
    assert KrakenSettings(symbols=["XBTUSD", "XDG/USD"]).symbols == ["BTC-USD", "DOGE-USD"]


@pytest.mark.parametrize(
    "bad",
    [
        {"max_messages_per_second": 6},
        {"rest_requests_per_second": 2},
        {"backfill_page_size": 1001},
        {"symbols_per_connection": 0},
        {"ticker_event_trigger": "book"},
        {"no_such_setting": 1},
    ],
)
def test_settings_outside_kraken_limits_fail_at_start(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        KrakenSettings.model_validate(bad)


def test_plan_subscribes_trade_without_snapshot_and_ticker_per_connection() -> None:
    spec = KrakenSpec(KrakenSettings(symbols_per_connection=2, ws_url="ws://x/v2"))
    subs = spec.plan(["BTC-USD", "ETH-USD", "XBT/USD", "SOL-USD"])
    assert [(s.name, s.url, s.symbols) for s in subs] == [
        ("kraken-ws-0", "ws://x/v2", ("BTC-USD", "ETH-USD")),
        ("kraken-ws-1", "ws://x/v2", ("SOL-USD",)),
    ]
    trade, ticker = (json.loads(m) for m in subs[0].messages)
    assert trade == {
        "method": "subscribe",
        "params": {"channel": "trade", "symbol": ["BTC/USD", "ETH/USD"], "snapshot": False},
        "req_id": 1,
    }
    assert ticker["params"] == {
        "channel": "ticker",
        "symbol": ["BTC/USD", "ETH/USD"],
        "event_trigger": "bbo",
        "snapshot": True,
    }
    assert [json.loads(m)["req_id"] for m in subs[1].messages] == [3, 4]


def test_parse_remembers_live_v2_trade_times_but_not_v1_keys() -> None:
    spec = KrakenSpec(KrakenSettings())
    row = {
        "symbol": "BTC/USD",
        "side": "buy",
        "price": 1.0,
        "qty": 1.0,
        "trade_id": 42,
        "timestamp": "2023-09-25T07:49:37.708706Z",
    }
    frame = json.dumps({"channel": "trade", "type": "update", "data": [row]}).encode()
    [trade] = spec.parse(frame, 5)
    assert isinstance(trade, Trade)
    assert spec.anchors.at_or_before("BTC-USD", 43) == 1695628177708706 * 1000 - 10**9
    v1 = b'[1,[["1.0","1.0","1618678142.5","b","l",""]],"trade","XBT/USD"]'
    [old] = spec.parse(v1, 7)
    assert isinstance(old, Trade) and old.trade_id == 7000
    assert spec.anchors.at_or_before("BTC-USD", 10**18) == spec.anchors.at_or_before("BTC-USD", 43)
    assert isinstance(spec.arrival_keys, ArrivalKeys)
