"""Settings: `marketpipe.toml`, then `MARKETPIPE_*` environment variables (nested with `__`).

Precedence, highest first: explicit overrides (CLI flags), environment, the TOML file, defaults.
A bad value fails at start with a ConfigError naming the field and what to change.
"""

import difflib
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from marketpipe.analytics.settings import DbtSettings, SchedulerSettings
from marketpipe.cluster.settings import ClusterSettings, GcpSettings
from marketpipe.model.errors import ConfigError
from marketpipe.model.symbols import DEFAULT_SYMBOLS, normalize
from marketpipe.serving.settings import ApiSettings
from marketpipe.sources.binance.settings import BinanceSettings
from marketpipe.sources.coinbase.settings import CoinbaseSettings
from marketpipe.sources.coingecko.settings import CoinGeckoSettings
from marketpipe.sources.finnhub.settings import FinnhubSettings
from marketpipe.sources.kraken.settings import KrakenSettings
from marketpipe.sources.venue import VenueSettings
from marketpipe.sources.venues import VENUES, venue
from marketpipe.storage.commit_log import Durability
from marketpipe.storage.lifecycle_settings import LifecycleSettings

CONFIG_FILE_ENV = "MARKETPIPE_CONFIG"
ENV_PREFIX = "MARKETPIPE_"
DEFAULT_CONFIG_FILE = Path("marketpipe.toml")
# Market-data sources a live run can poll beside the trade venues (`venues = ["binance",
# "coingecko"]`): no WebSocket, no trades, no VenueSpec; each has its settings section.
MARKET_SOURCES: tuple[str, ...] = ("coingecko",)
# Every section rejects keys it does not know: a misspelt setting fails at start, it is never
# silently ignored.
_STRICT = ConfigDict(extra="forbid")


class EngineSettings(BaseModel):
    """Event-time semantics and micro-batching."""

    model_config = _STRICT

    grace_s: float = Field(2.0, ge=0)
    allowed_lateness_s: float = Field(3600.0, ge=0)
    batch_max_trades: int = Field(100_000, ge=1)
    batch_max_delay_ms: float = Field(2.0, ge=0)
    # Live: a quiet exchange's watermark follows the wall clock, minus grace and this lag
    # (clock skew plus network delay), so its last windows still go final.
    idle_watermark: bool = True
    idle_lag_s: float = Field(1.0, ge=0)

    @property
    def final_after_us(self) -> int:
        """How long after its end a window can still change: grace plus allowed lateness."""
        return int((self.grace_s + self.allowed_lateness_s) * 1e6)


class AlertSettings(BaseModel):
    model_config = _STRICT

    whale_notional: float = Field(100_000.0, gt=0)
    volume_spike_quote: float = Field(1_000_000.0, gt=0)
    volume_spike_multiple: float = Field(5.0, gt=1)
    volume_spike_history_min: int = Field(60, ge=1)
    price_spike_pct: float = Field(0.02, gt=0)
    # venue_divergence: a venue's 1m close this far from the median of the other venues'
    # (basis points), for this long (rounded up to whole minutes), with this many venues.
    divergence_bps: float = Field(50.0, gt=0)
    divergence_s: float = Field(120.0, gt=0)
    divergence_min_venues: int = Field(3, ge=2)


class StorageSettings(BaseModel):
    model_config = _STRICT

    hot_retention_minutes: int = Field(60, ge=1)
    # Raw trades move from the warm store to the lake (in the background) once this many are
    # pending, counted over all symbols, and when a run ends.
    lake_flush_trades: int = Field(500_000, ge=1)
    # DuckDB worker threads of the warm store. One suits micro-batch writes best (measured:
    # less CPU per insert and lower commit latency); raise it for heavy analytical queries.
    warm_threads: int = Field(1, ge=1)
    # DuckDB's memory limit (its block cache and query memory; more spills to disk).
    warm_memory_mb: int = Field(128, ge=16)
    # Live: commit each micro-batch to an append-only log (about a millisecond) and build the
    # warm store from it in the background; off, every batch is one DuckDB transaction.
    commit_log: bool = True
    # When a commit-log append reaches the disk. Every mode writes before the commit returns,
    # so all survive kill -9; for power loss: "group" fdatasyncs each commit group before it
    # returns (loses nothing acknowledged), "timer" every fsync_interval_ms (loses up to that
    # interval), "never" leaves it to the OS (~30 s on Linux). docs/reliability.md.
    durability: Durability = "group"
    fsync_interval_ms: int = Field(100, ge=1)
    # Deprecated: true is durability "group", false is "never".
    fsync: bool | None = None

    @model_validator(mode="after")
    def _fsync_is_a_durability(self) -> "StorageSettings":
        if self.fsync is None:
            return self
        implied: Durability = "group" if self.fsync else "never"
        if "durability" in self.model_fields_set and self.durability != implied:
            raise ValueError(
                f"fsync = {str(self.fsync).lower()} (deprecated) contradicts durability = "
                f"{self.durability!r}: set only durability"
            )
        self.durability = implied
        return self

    @property
    def hot_retention_us(self) -> int:
        return self.hot_retention_minutes * 60_000_000


class SimulatorSettings(BaseModel):
    model_config = _STRICT

    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)
    trades_per_second: float = Field(200.0, gt=0)
    seed: int = 7
    # Simulated stocks keep US market hours (else they trade around the clock).
    market_hours: bool = False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        toml_file=DEFAULT_CONFIG_FILE,
    )

    # Binance's symbols (the other venues' lists are in their sections).
    symbols: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_SYMBOLS))
    # The venues a live run connects to, and the market-data sources it polls
    # (MARKET_SOURCES); each has its section below.
    venues: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["binance"])
    data_dir: Path = Path("data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    binance: BinanceSettings = BinanceSettings()
    coinbase: CoinbaseSettings = CoinbaseSettings()
    kraken: KrakenSettings = KrakenSettings()
    finnhub: FinnhubSettings = FinnhubSettings()
    coingecko: CoinGeckoSettings = CoinGeckoSettings()
    engine: EngineSettings = EngineSettings()
    alerts: AlertSettings = AlertSettings()
    storage: StorageSettings = StorageSettings()
    api: ApiSettings = ApiSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    dbt: DbtSettings = DbtSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    cluster: ClusterSettings = ClusterSettings()
    gcp: GcpSettings = GcpSettings()
    lifecycle: LifecycleSettings = LifecycleSettings()

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.replace(" ", ",").split(",") if part]
        return value

    @field_validator("symbols")
    @classmethod
    def _normalize_symbols(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one symbol is needed, e.g. BTCUSDT")
        return list(dict.fromkeys(normalize(symbol) for symbol in value))

    @field_validator("venues", mode="before")
    @classmethod
    def _split_venues(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.replace(" ", ",").split(",") if part]
        return value

    @field_validator("venues")
    @classmethod
    def _known_venues(cls, value: list[str]) -> list[str]:
        known = ", ".join(sorted({*VENUES, *MARKET_SOURCES}))
        if not value:
            raise ValueError(f"at least one venue is needed, e.g. {known}")
        names: list[str] = []
        for name in value:
            cleaned = name.strip().lower()
            if cleaned in MARKET_SOURCES:
                names.append(cleaned)
                continue
            try:
                names.append(venue(name).name)
            except ValueError:
                raise ValueError(f"unknown venue {name!r}; known venues: {known}") from None
        return list(dict.fromkeys(names))

    @property
    def trade_venues(self) -> list[str]:
        """The venues among `venues` that stream trades (each run by a connector)."""
        return [name for name in self.venues if name not in MARKET_SOURCES]

    @property
    def market_sources(self) -> list[str]:
        """The market-data sources among `venues` (polled, e.g. `coingecko`)."""
        return [name for name in self.venues if name in MARKET_SOURCES]

    def venue_settings(self, name: str) -> VenueSettings:
        """The settings section of trade venue `name` (not of a market-data source)."""
        if name.strip().lower() in MARKET_SOURCES:
            raise ValueError(f"{name} is a market-data source, not a trade venue")
        section = getattr(self, venue(name).name)
        assert isinstance(section, VenueSettings)
        return section

    def venue_symbols(self, name: str) -> list[str]:
        """The normalized symbols a run ingests from venue `name` (none from a market-data
        source: it has assets, not trading pairs)."""
        if name.strip().lower() in MARKET_SOURCES:
            return []
        section = self.venue_settings(name)
        if section.symbols:
            return list(section.symbols)
        return list(self.symbols) if name == "binance" else []

    def configured_symbols(self) -> dict[str, list[str]]:
        """The symbols of every trade venue a run ingests, by venue."""
        return {name: self.venue_symbols(name) for name in self.trade_venues}

    def choose_venues(self, venues: list[str], symbols: list[str] | None = None) -> "Settings":
        """Settings that run just `venues` (validated), each with `symbols` when given
        (`--venues coinbase --symbols BTC-USD,ETH-USD`)."""
        chosen = type(self)._known_venues(type(self)._split_venues(venues))
        update: dict[str, Any] = {"venues": chosen}
        if symbols:
            normalized = Settings._normalize_symbols(symbols)
            for name in (n for n in chosen if n not in MARKET_SOURCES):
                update[name] = self.venue_settings(name).model_copy(update={"symbols": normalized})
            if "binance" in chosen:
                update["symbols"] = normalized
        return self.model_copy(update=update)

    @model_validator(mode="after")
    def _absolute_paths(self) -> "Settings":
        """Resolve every user-given path once, here, against the directory marketpipe started
        in: subprocesses (dbt runs in `{data_dir}/dbt`) would otherwise apply it again."""
        self.data_dir = _absolute(self.data_dir)
        dbt = self.dbt
        self.dbt = dbt.model_copy(
            update={
                "project_dir": _absolute_or_none(dbt.project_dir),
                "executable": _absolute_or_none(dbt.executable),
            }
        )
        dashboard = _absolute_or_none(self.api.dashboard_dir)
        self.api = self.api.model_copy(update={"dashboard_dir": dashboard})
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def _absolute(path: Path) -> Path:
    return path.expanduser().absolute()


def _absolute_or_none(path: Path | None) -> Path | None:
    return None if path is None else _absolute(path)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load settings, raising ConfigError with one line per bad field."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    source = config_file if config_file is not None else DEFAULT_CONFIG_FILE
    try:
        _check_nested_environment(dict(os.environ))
        if config_file is not None:
            if not config_file.is_file():
                raise ConfigError(f"config file {config_file} does not exist")

            class _FromFile(Settings):
                model_config = SettingsConfigDict(toml_file=config_file)

            return _FromFile(**overrides)
        return Settings(**overrides)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_error(source, exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {source}: {exc}") from None
    except ValidationError as exc:
        lines = [_field_error(error, source) for error in exc.errors()]
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None


def _toml_error(source: Path, exc: tomllib.TOMLDecodeError) -> str:
    """`invalid TOML in marketpipe.toml, line 3, column 8: Expected ']' ...`, one line."""
    message = str(exc)
    found = re.search(r"\(at line (\d+), column (\d+)\)$", message)
    if found is None:
        return f"invalid TOML in {source}: {message}"
    what = message[: found.start()].rstrip()
    return f"invalid TOML in {source}, line {found[1]}, column {found[2]}: {what}"


def _field_error(error: Any, source: Path) -> str:
    loc = [str(part) for part in error["loc"]]
    field = ".".join(loc) or "(root)"
    env = ENV_PREFIX + "__".join(part.upper() for part in loc)
    if error["type"] != "extra_forbidden":
        return f"  {field} (env {env}): {error['msg']}; got {error.get('input')!r}"
    *section, key = loc
    model = _section_model(section)
    known = sorted(model.model_fields) if model is not None else []
    where = f"in section [{'.'.join(section)}]" if section else "at the top level"
    origin = ", set in the environment" if _env_value(env) is not None else f" of {source}"
    hint = difflib.get_close_matches(key, known, n=1)
    line = f"  {field} (env {env}): unknown key {key!r} {where}{origin}"
    line += f"; did you mean {hint[0]}?" if hint else "."
    return line + (f" Known keys: {', '.join(known)}" if known else "")


def _section_model(section: list[str]) -> type[BaseModel] | None:
    model: type[BaseModel] = Settings
    for name in section:
        field = model.model_fields.get(name)
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _env_value(name: str) -> str | None:
    for key, value in os.environ.items():
        if key.upper() == name:
            return value
    return None


def _check_nested_environment(environ: dict[str, str]) -> None:
    """`MARKETPIPE_SECTION__KEY` for a section that does not exist: pydantic-settings skips it
    (it reads only the variables of known fields), so a typo would be silently ignored."""
    sections = {
        name
        for name, field in Settings.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    }
    for key in sorted(environ):
        upper = key.upper()
        if not upper.startswith(ENV_PREFIX) or "__" not in upper:
            continue
        section = upper[len(ENV_PREFIX) :].split("__", 1)[0].lower()
        if section not in sections:
            hint = difflib.get_close_matches(section, sorted(sections), n=1)
            line = f"  {key}: unknown section {section!r} (environment)"
            line += f"; did you mean {ENV_PREFIX}{hint[0].upper()}__...?" if hint else "."
            raise ConfigError(
                f"invalid configuration:\n{line} Known sections: {', '.join(sorted(sections))}"
            )
