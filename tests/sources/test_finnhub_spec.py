"""Finnhub settings and spec: the token masked and kept out of names, the ticker map, the
free tier's limits, the subscribe messages, no back-fill."""

import json
import logging

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from marketpipe.model.errors import ConfigError
from marketpipe.sources.finnhub.settings import FinnhubSettings
from marketpipe.sources.finnhub.spec import FinnhubSpec, with_token
from marketpipe.sources.finnhub.symbols import to_symbol, to_ticker

TOKEN = "c9secret-TOKEN/+="


class _Composed(BaseSettings):
    """The way config.py composes a venue's section (prefix, nested delimiter)."""

    model_config = SettingsConfigDict(env_prefix="MARKETPIPE_", env_nested_delimiter="__")
    finnhub: FinnhubSettings = FinnhubSettings()


def test_defaults() -> None:
    s = FinnhubSettings()
    assert (s.ws_url, s.symbols, s.symbols_per_connection, s.max_connections) == (
        "wss://ws.finnhub.io",
        ["AAPL-USD", "MSFT-USD"],
        50,
        1,
    )
    assert not s.has_token
    spec = FinnhubSpec(s)
    assert (spec.name, spec.has_trade_ids, spec.history()) == ("finnhub", False, None)


def test_token_from_the_environment_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETPIPE_FINNHUB__TOKEN", TOKEN)
    monkeypatch.setenv("MARKETPIPE_FINNHUB__SYMBOLS", "aapl,BRK.B")
    s = _Composed().finnhub
    assert s.token.get_secret_value() == TOKEN and s.has_token
    assert s.symbols == ["AAPL-USD", "BRK.B-USD"]
    for text in (repr(s), str(s), s.model_dump_json(), repr(_Composed())):
        assert TOKEN not in text
    assert "**********" in s.model_dump_json()


def test_ticker_map() -> None:
    assert [to_symbol(t) for t in ("AAPL", "msft", " brk.b ", "AAPL-USD", "X")] == [
        "AAPL-USD",
        "MSFT-USD",
        "BRK.B-USD",
        "AAPL-USD",
        "X-USD",
    ]
    assert [to_ticker(s) for s in ("AAPL-USD", "BRK.B-USD", "MSFT")] == ["AAPL", "BRK.B", "MSFT"]
    for bad in ("", "BTC-USDT", "AAPL-EUR", "1AAPL", "OANDA:EUR_USD", "A" * 16, "AA PL"):
        with pytest.raises(ValueError):
            to_symbol(bad)
    assert to_symbol("A" * 15) == "A" * 15 + "-USD"


def test_bad_symbols_and_limits_fail_at_start() -> None:
    with pytest.raises(ValidationError, match="BTC-USDT"):
        FinnhubSettings(symbols=["AAPL", "BTC-USDT"])
    with pytest.raises(ValidationError, match="51 symbols exceed 1 connection"):
        FinnhubSettings(symbols=[f"S{i}" for i in range(51)])
    assert len(FinnhubSettings(symbols=[f"S{i}" for i in range(50)]).symbols) == 50
    with pytest.raises(ValidationError):
        FinnhubSettings(symbols_per_connection=0)
    with pytest.raises(ValidationError):
        FinnhubSettings(tokn="x")  # extra="forbid": a misspelt key fails


def test_plan_subscribes_each_ticker_and_keeps_the_token_out_of_the_name() -> None:
    spec = FinnhubSpec(FinnhubSettings(token=TOKEN, symbols=["AAPL", "BRK.B"]))
    (sub,) = spec.plan(["AAPL-USD", "BRK.B-USD", "AAPL"])
    assert sub.name == "finnhub-ws-0"
    assert sub.url == "wss://ws.finnhub.io?token=c9secret-TOKEN%2F%2B%3D"
    assert sub.symbols == ("AAPL-USD", "BRK.B-USD")
    assert [json.loads(m) for m in sub.messages] == [
        {"type": "subscribe", "symbol": "AAPL"},
        {"type": "subscribe", "symbol": "BRK.B"},
    ]
    assert TOKEN not in sub.name and "secret" not in sub.name


def test_plan_splits_over_connections_up_to_the_limit() -> None:
    settings = FinnhubSettings(token="t", symbols_per_connection=2, max_connections=2)
    spec = FinnhubSpec(settings)
    subs = spec.plan(["A", "B", "C"])
    assert [(s.name, s.symbols) for s in subs] == [
        ("finnhub-ws-0", ("A-USD", "B-USD")),
        ("finnhub-ws-1", ("C-USD",)),
    ]
    with pytest.raises(ConfigError, match="5 symbols exceed 2 connection"):
        spec.plan(["A", "B", "C", "D", "E"])


def test_plan_without_a_token_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="MARKETPIPE_FINNHUB__TOKEN"):
        FinnhubSpec(FinnhubSettings()).plan(["AAPL"])


def test_with_token_appends_to_a_url_with_a_query() -> None:
    assert with_token("ws://h:1/?x=1", "a b") == "ws://h:1/?x=1&token=a%20b"


def test_logging_the_settings_does_not_leak(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("settings %s", FinnhubSettings(token=TOKEN))
    assert TOKEN not in caplog.text
