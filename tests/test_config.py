import os
import subprocess
import sys
from pathlib import Path

import pytest

from marketpipe.config import DEFAULT_SYMBOLS, load_settings
from marketpipe.model.errors import ConfigError
from marketpipe.sources.venues import VENUES

SECTIONS = {"alerts", "api", "binance", "cluster", "coinbase", "coingecko", "dbt", "engine",
            "finnhub", "gcp", "kraken", "lifecycle", "scheduler", "simulator",
            "storage"}  # fmt: skip


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
        ("MARKETPIPE_STORAGE__DURABILITY", "always", "storage.durability"),
        ("MARKETPIPE_STORAGE__FSYNC_INTERVAL_MS", "0", "storage.fsync_interval_ms"),
    ],
)
def test_bad_config_names_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str, value: str, field: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_settings()


@pytest.mark.parametrize(
    ("toml", "durability"),
    [("", "group"), ("fsync = true\n", "group"), ("fsync = false\n", "never"),
     ('durability = "timer"\n', "timer"), ('fsync = true\ndurability = "group"\n', "group")],
)  # fmt: skip
def test_durability_defaults_to_group_and_the_deprecated_fsync_picks_group_or_never(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str, durability: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "marketpipe.toml").write_text("[storage]\n" + toml)
    assert load_settings().storage.durability == durability


def test_deprecated_fsync_contradicting_durability_fails_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "marketpipe.toml").write_text('[storage]\nfsync = false\ndurability = "group"\n')
    with pytest.raises(ConfigError, match=r"storage.*fsync = false.*contradicts durability"):
        load_settings()


def test_unknown_keys_in_the_file_are_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "marketpipe.toml").write_text("symbolz = ['BTCUSDT']\n")
    with pytest.raises(ConfigError, match="symbolz"):
        load_settings()


# ---- bad input at the command line: one clear line each, exit 2, nothing started -----------

ENGINE_KEYS = (
    "allowed_lateness_s, batch_max_delay_ms, batch_max_trades, grace_s, idle_lag_s, idle_watermark"
)


def _marketpipe(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPIPE_")}
    return subprocess.run(
        [sys.executable, "-m", "marketpipe.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**environ, "COLUMNS": "80", **(env or {})},
    )


@pytest.mark.parametrize("command", [["dbt", "build"], ["demo", "--duration", "1"]])
def test_unknown_key_in_a_section_fails_at_start_naming_key_and_section(
    tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "bad.toml").write_text("[engine]\ngrace_sec = 2\n")
    result = _marketpipe(tmp_path, *command, "--config", "bad.toml", "--data-dir", "d")
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "error: invalid configuration:\n"
        "  engine.grace_sec (env MARKETPIPE_ENGINE__GRACE_SEC): unknown key 'grace_sec' in "
        "section [engine] of bad.toml; did you mean grace_s? Known keys: " + ENGINE_KEYS + "\n"
    )
    assert not (tmp_path / "d").exists()  # nothing started


def test_unknown_key_in_the_default_config_file_names_it(tmp_path: Path) -> None:
    (tmp_path / "marketpipe.toml").write_text("[scheduler]\nevery_s = 5\n")
    result = _marketpipe(tmp_path, "dbt", "build", "--data-dir", "d")
    assert result.returncode == 2
    first, second = result.stderr.splitlines()
    assert first == "error: invalid configuration:"
    assert second.startswith(
        "  scheduler.every_s (env MARKETPIPE_SCHEDULER__EVERY_S): unknown key 'every_s' in "
        "section [scheduler] of marketpipe.toml"
    )


def test_unknown_nested_environment_variable_fails_naming_it(tmp_path: Path) -> None:
    result = _marketpipe(
        tmp_path, "dbt", "build", "--data-dir", "d", env={"MARKETPIPE_ENGINE__GRACE_SEC": "2"}
    )
    assert result.returncode == 2
    assert result.stderr == (
        "error: invalid configuration:\n"
        "  engine.grace_sec (env MARKETPIPE_ENGINE__GRACE_SEC): unknown key 'grace_sec' in "
        "section [engine], set in the environment; did you mean grace_s? Known keys: "
        + ENGINE_KEYS
        + "\n"
    )


def test_environment_variable_of_an_unknown_section_fails_naming_it(tmp_path: Path) -> None:
    result = _marketpipe(
        tmp_path, "dbt", "build", "--data-dir", "d", env={"MARKETPIPE_ENGINX__GRACE_S": "2"}
    )
    assert result.returncode == 2
    assert result.stderr == (
        "error: invalid configuration:\n"
        "  MARKETPIPE_ENGINX__GRACE_S: unknown section 'enginx' (environment); did you mean "
        "MARKETPIPE_ENGINE__...? Known sections: "
        f"{', '.join(sorted(SECTIONS))}\n"
    )
    # Every venue is a section of its own (the registry is the list of them).
    assert set(VENUES) <= SECTIONS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[engine\ngrace_s = 2\n",
            "invalid TOML in bad.toml, line 1, column 8: "
            "Expected ']' at the end of a table declaration",
        ),
        (
            "symbols = ['BTCUSDT']\n[engine]\ngrace_s = = 2\n",
            "invalid TOML in bad.toml, line 3, column 11: Invalid value",
        ),
    ],
)
def test_invalid_toml_is_one_line_naming_file_line_and_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "bad.toml").write_text(text)
    result = _marketpipe(tmp_path, "dbt", "build", "--config", "bad.toml", "--data-dir", "d")
    assert result.returncode == 2
    assert result.stderr == f"error: {message}\n"


def test_relative_paths_are_resolved_once_against_the_start_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MARKETPIPE_DBT__PROJECT_DIR", "proj/dbt")
    settings = load_settings(data_dir=Path("data/demo"))
    assert settings.data_dir == tmp_path / "data" / "demo"
    assert settings.dbt.project_dir == tmp_path / "proj" / "dbt"
    assert settings.dbt.executable is None and settings.api.dashboard_dir is None
    assert load_settings(data_dir=Path("~/x")).data_dir == Path.home() / "x"


# ---- venues ------------------------------------------------------------------------------


def test_venues_default_to_binance_with_the_top_level_symbols(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, symbols="BTCUSDT,ethusdt")
    assert settings.venues == ["binance"]
    assert settings.venue_symbols("binance") == ["BTC-USDT", "ETH-USDT"]


def test_a_venue_section_symbol_list_wins_over_the_top_level_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARKETPIPE_BINANCE__SYMBOLS", "SOLUSDT, BTC/USDT")
    settings = load_settings(data_dir=tmp_path, symbols="ETHUSDT")
    assert settings.venue_symbols("binance") == ["SOL-USDT", "BTC-USDT"]


def test_choosing_venues_gives_each_the_symbols_named(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path).choose_venues(["BINANCE", "binance"], ["btcusdt"])
    assert settings.venues == ["binance"]  # spelt any case, listed once
    assert settings.venue_symbols("binance") == ["BTC-USDT"]
    unchanged = load_settings(data_dir=tmp_path).choose_venues(["binance"])
    assert unchanged.venue_symbols("binance")[0] == "BTC-USDT"  # the defaults stay


def test_an_unknown_venue_fails_at_start_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="unknown venue 'nasdaq'; known venues: binance"):
        load_settings(data_dir=tmp_path).choose_venues(["nasdaq"])
    monkeypatch.setenv("MARKETPIPE_VENUES", "binance,nyse")
    with pytest.raises(ConfigError, match=r"venues .*unknown venue 'nyse'"):
        load_settings(data_dir=tmp_path)


def test_a_malformed_venue_symbol_fails_at_start_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARKETPIPE_BINANCE__SYMBOLS", "BTC-USDT,NOTAPAIR")
    with pytest.raises(ConfigError, match=r"binance\.symbols.*'NOTAPAIR'"):
        load_settings(data_dir=tmp_path)


# ---- coingecko: a market-data source beside the trade venues ------------------------------


def test_coingecko_is_accepted_as_a_venue_but_is_no_trade_venue(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path).choose_venues(["binance", "CoinGecko"])
    assert settings.venues == ["binance", "coingecko"]
    assert settings.trade_venues == ["binance"]
    assert settings.market_sources == ["coingecko"]
    assert settings.venue_symbols("coingecko") == []  # assets, not trading pairs
    assert list(settings.configured_symbols()) == ["binance"]
    with pytest.raises(ValueError, match="market-data source"):
        settings.venue_settings("coingecko")


def test_choosing_coingecko_with_symbols_leaves_its_assets_alone(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path).choose_venues(
        ["coinbase", "coingecko"], ["BTC-USD"]
    )
    assert settings.venue_symbols("coinbase") == ["BTC-USD"]
    assert settings.coingecko.assets[:2] == ["BTC", "ETH"]


def test_coingecko_endpoint_assets_and_key_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARKETPIPE_COINGECKO__REST_URL", "http://127.0.0.1:9/api/v3")
    monkeypatch.setenv("MARKETPIPE_COINGECKO__ASSETS", "BTC,solana")
    monkeypatch.setenv("MARKETPIPE_COINGECKO__API_KEY", "cg-demo-key")
    monkeypatch.setenv("MARKETPIPE_VENUES", "coingecko")
    settings = load_settings(data_dir=tmp_path)
    assert settings.venues == ["coingecko"] and settings.trade_venues == []
    assert settings.coingecko.rest_url == "http://127.0.0.1:9/api/v3"
    assert settings.coingecko.coin_ids == ["bitcoin", "solana"]
    assert settings.coingecko.headers()["x-cg-demo-api-key"] == "cg-demo-key"
    assert "cg-demo-key" not in repr(settings)


def test_an_unknown_venue_message_lists_coingecko_among_the_known(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown venue 'gecko'; known venues: .*coingecko"):
        load_settings(data_dir=tmp_path).choose_venues(["gecko"])


def test_a_bad_coingecko_setting_fails_at_start_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARKETPIPE_COINGECKO__POLL_INTERVAL_S", "0")
    with pytest.raises(ConfigError, match=r"coingecko\.poll_interval_s"):
        load_settings(data_dir=tmp_path)
