"""Settings: `marketpipe.toml`, then `MARKETPIPE_*` environment variables (nested with `__`).

Precedence, highest first: explicit overrides (CLI flags), environment, the TOML file, defaults.
A bad value fails at start with a ConfigError naming the field and what to change.
"""

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from marketpipe.analytics.settings import DbtSettings, SchedulerSettings
from marketpipe.cluster_settings import ClusterSettings
from marketpipe.model.errors import ConfigError
from marketpipe.model.symbols import DEFAULT_SYMBOLS, normalize
from marketpipe.serving.settings import ApiSettings
from marketpipe.sources.binance.settings import BinanceSettings
from marketpipe.storage.lifecycle_settings import LifecycleSettings

CONFIG_FILE_ENV = "MARKETPIPE_CONFIG"


class EngineSettings(BaseModel):
    """Event-time semantics and micro-batching."""

    grace_s: float = Field(2.0, ge=0)
    allowed_lateness_s: float = Field(3600.0, ge=0)
    batch_max_trades: int = Field(100_000, ge=1)
    batch_max_delay_ms: float = Field(2.0, ge=0)
    # Live: a quiet exchange's watermark follows the wall clock, minus grace and this lag
    # (clock skew plus network delay), so its last windows still go final.
    idle_watermark: bool = True
    idle_lag_s: float = Field(1.0, ge=0)


class AlertSettings(BaseModel):
    whale_notional: float = Field(100_000.0, gt=0)
    volume_spike_quote: float = Field(1_000_000.0, gt=0)
    volume_spike_multiple: float = Field(5.0, gt=1)
    volume_spike_history_min: int = Field(60, ge=1)
    price_spike_pct: float = Field(0.02, gt=0)


class StorageSettings(BaseModel):
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
    # fdatasync each commit-log append: survives power loss, not only kill -9.
    fsync: bool = True


class SimulatorSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)
    trades_per_second: float = Field(200.0, gt=0)
    seed: int = 7


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MARKETPIPE_",
        env_nested_delimiter="__",
        extra="forbid",
        toml_file="marketpipe.toml",
    )

    symbols: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_SYMBOLS))
    data_dir: Path = Path("data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    binance: BinanceSettings = BinanceSettings()
    engine: EngineSettings = EngineSettings()
    alerts: AlertSettings = AlertSettings()
    storage: StorageSettings = StorageSettings()
    api: ApiSettings = ApiSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    dbt: DbtSettings = DbtSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    cluster: ClusterSettings = ClusterSettings()
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


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load settings, raising ConfigError with one line per bad field."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    try:
        if config_file is not None:
            if not config_file.is_file():
                raise ConfigError(f"config file {config_file} does not exist")

            class _FromFile(Settings):
                model_config = SettingsConfigDict(toml_file=config_file)

            return _FromFile(**overrides)
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "(root)"
            env = "MARKETPIPE_" + "__".join(str(p).upper() for p in error["loc"])
            lines.append(f"  {field} (env {env}): {error['msg']}; got {error.get('input')!r}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None
