from pathlib import Path

import pytest

from marketpipe.config import DEFAULT_SYMBOLS, load_settings
from marketpipe.model.errors import ConfigError


def test_defaults_are_the_twenty_usdt_pairs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.symbols == list(DEFAULT_SYMBOLS) and len(DEFAULT_SYMBOLS) == 20
    assert settings.symbols[0] == "BTC-USDT" and "SUI-USDT" in settings.symbols


def test_env_overrides_toml_and_redirects_binance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "marketpipe.toml").write_text('symbols = ["ETHUSDT"]\n[engine]\ngrace_s = 5\n')
    monkeypatch.setenv("MARKETPIPE_BINANCE__WS_URL", "ws://127.0.0.1:9")
    monkeypatch.setenv("MARKETPIPE_BINANCE__REST_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("MARKETPIPE_ENGINE__GRACE_S", "1.5")
    settings = load_settings()
    assert settings.symbols == ["ETH-USDT"]
    assert settings.engine.grace_s == 1.5
    assert (settings.binance.ws_url, settings.binance.rest_url) == (
        "ws://127.0.0.1:9",
        "http://127.0.0.1:9",
    )


def test_comma_separated_symbols_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MARKETPIPE_SYMBOLS", "btcusdt,SOL-USDT")
    assert load_settings().symbols == ["BTC-USDT", "SOL-USDT"]


@pytest.mark.parametrize(
    ("env", "value", "field"),
    [
        ("MARKETPIPE_ENGINE__GRACE_S", "-1", "engine.grace_s"),
        (
            "MARKETPIPE_BINANCE__MAX_STREAMS_PER_CONNECTION",
            "5000",
            "binance.max_streams_per_connection",
        ),
        ("MARKETPIPE_SYMBOLS", "NOTASYMBOL", "symbols"),
        ("MARKETPIPE_LOG_LEVEL", "LOUD", "log_level"),
    ],
)
def test_bad_config_names_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str, value: str, field: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_settings()


def test_unknown_keys_in_the_file_are_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "marketpipe.toml").write_text("symbolz = ['BTCUSDT']\n")
    with pytest.raises(ConfigError, match="symbolz"):
        load_settings()
