"""Kraken connector settings: endpoints and the limits of Kraken's spot API.

From Kraken's documentation:
- WebSocket v2 public data is at `wss://ws.kraken.com/v2`; the server sends a heartbeat about
  once a second when no other update is due, so a silent connection is a dead one.
- The WebSocket message rate limit is dynamic and not published; we pace our few subscribe
  messages well below anything a server would refuse.
- Public REST endpoints are throttled per IP at about one request a second; going over answers
  HTTP 200 with an `error` array (`EGeneral:Too many requests`, `EAPI:Rate limit exceeded`,
  `EService:Throttled: <unix time>`), which the REST client treats as a 429.
- `/0/public/Trades` returns at most 1000 trades a call (`count`).
"""

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from marketpipe.sources.kraken.symbols import canonical
from marketpipe.sources.venue import VenueSettings

DEFAULT_SYMBOLS = ("BTC-USD", "ETH-USD")


class KrakenSettings(VenueSettings):
    """Kraken spot endpoints, limits and back-fill tuning."""

    ws_url: str = "wss://ws.kraken.com/v2"
    rest_url: str = "https://api.kraken.com"
    # NoDecode as in VenueSettings: `MARKETPIPE_KRAKEN__SYMBOLS=BTC-USD,ETH-USD` is a list.
    symbols: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_SYMBOLS))
    max_messages_per_second: float = Field(1.0, gt=0, le=5)
    # How many pairs one connection subscribes to (both channels); more means more connections.
    symbols_per_connection: int = Field(100, ge=1, le=1000)
    # "bbo": a ticker update on every best bid/offer change (our Quote); "trades": on trades.
    ticker_event_trigger: Literal["bbo", "trades"] = "bbo"
    rest_requests_per_second: float = Field(1.0, gt=0, le=1)
    # First pause after a rate-limit answer; doubled while they repeat, up to backoff_max_s.
    rate_limit_pause_s: float = Field(5.0, gt=0)
    backfill_page_size: int = Field(1000, ge=1, le=1000)
    # Back-fill pages by time (see history.py): the resolution of the search for the time of a
    # trade id nothing local remembers, e.g. after a restart.
    locate_step_s: float = Field(60.0, gt=0)

    @field_validator("symbols", mode="before")
    @classmethod
    def _common_spelling(cls, value: object) -> object:
        # Before the generic normalization, which would split `XBTUSD` as XB-TUSD; and
        # `XBT/USD` and `BTC/USD` are one pair: trades arrive as BTC-USD either way.
        if isinstance(value, str):
            value = [part for part in value.replace(" ", ",").split(",") if part]
        if isinstance(value, list):
            return [canonical(s) if isinstance(s, str) else s for s in value]
        return value
