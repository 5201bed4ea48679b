"""Settings of the API server (`[api]` in marketpipe.toml, `MARKETPIPE_API__*` in the env)."""

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key fails at start

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # Bearer token required for everything but health and metrics (MARKETPIPE_API__TOKEN).
    # Binance clients may send it as their API key (X-MBX-APIKEY); browsers as ?token=.
    token: SecretStr | None = None
    # Origins allowed to call the API from a browser, e.g. ["https://example.org"]; "*" = any.
    cors_origins: list[str] = Field(default_factory=list)
    # Per client (its token when `token` is set, else its IP), in the `limits` notation:
    # "1200/minute", "20/second".
    rate_limit: str = "1200/minute"
    # The dashboard's own requests get a separate, generous budget so it is never starved.
    dashboard_rate_limit: str = "12000/minute"
    # Where the dashboard's built assets are (default: the repo's web/ directory).
    dashboard_dir: Path | None = None

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part for part in value.replace(" ", ",").split(",") if part]
        return value

    @field_validator("rate_limit", "dashboard_rate_limit")
    @classmethod
    def _valid_limit(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate limit like '1200/minute'") from None
        return value
