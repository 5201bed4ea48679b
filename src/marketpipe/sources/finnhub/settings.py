"""Finnhub connector settings: the endpoint, the API token and the free tier's limits.

From Finnhub's documentation:
- Trades stream over `wss://ws.finnhub.io?token=<api key>`; one `{"type":"subscribe",
  "symbol":"AAPL"}` message per symbol, `unsubscribe` likewise.
- The free tier allows 50 symbols on one connection per API key; asking for more answers an
  `{"type":"error","msg":...}` frame. The limits are settings, validated, so a paid plan can
  raise them.
- Finnhub's REST API has no tick history on the free tier, so nothing is back-filled.

The token is a `SecretStr` (`MARKETPIPE_FINNHUB__TOKEN`): masked in reprs and logs.
"""

from typing import Annotated, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from marketpipe.sources.finnhub.symbols import to_symbol
from marketpipe.sources.venue import VenueSettings

DEFAULT_SYMBOLS = ("AAPL-USD", "MSFT-USD")


class FinnhubSettings(VenueSettings):
    """Finnhub stock trades: endpoint, token, symbol limits."""

    ws_url: str = "wss://ws.finnhub.io"
    rest_url: str = "https://finnhub.io/api/v1"
    token: SecretStr = SecretStr("")
    # Finnhub documents no daily cut, and one connection per key leaves no room for the
    # make-before-break overlap of a planned rotation: rotate only after 30 days.
    reconnect_after_s: float = Field(30 * 86400, gt=0)
    # Pings keep a connection busy outside market hours, but not every second.
    silence_timeout_s: float = Field(60.0, gt=0)
    # NoDecode kept from VenueSettings: `MARKETPIPE_FINNHUB__SYMBOLS=AAPL,MSFT` is a list.
    symbols: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_SYMBOLS))
    # Free tier: 50 symbols on one connection per API key.
    symbols_per_connection: int = Field(50, ge=1, le=10_000)
    max_connections: int = Field(1, ge=1, le=100)
    # Frames remembered to give a duplicate its first keys back; millisecond counters kept.
    duplicate_window_frames: int = Field(4096, ge=1)
    ordinal_window_ms: int = Field(65_536, ge=1)

    @field_validator("symbols", mode="before")
    @classmethod
    def _tickers(cls, value: object) -> object:
        # Before the generic normalization, which cannot read a bare ticker (`AAPL`).
        if isinstance(value, str):
            value = [part for part in value.replace(" ", ",").split(",") if part]
        if isinstance(value, list):
            return [to_symbol(s) if isinstance(s, str) else s for s in value]
        return value

    @model_validator(mode="after")
    def _within_limits(self) -> Self:
        room = self.symbols_per_connection * self.max_connections
        if len(self.symbols) > room:
            raise ValueError(
                f"finnhub: {len(self.symbols)} symbols exceed {self.max_connections} "
                f"connection(s) of {self.symbols_per_connection} symbols"
            )
        return self

    @property
    def has_token(self) -> bool:
        return bool(self.token.get_secret_value())
