"""Binance connector settings: endpoints and the connection rules of Binance's spot API.

Declared with the connector (sources own their settings); `marketpipe.config` composes them.
The connection timing (`silence_timeout_s`, backoff, rotation) is the supervisor's, inherited
from `VenueSettings`.
"""

from pydantic import Field

from marketpipe.sources.venue import VenueSettings


class BinanceSettings(VenueSettings):
    """Binance spot endpoints and the connection rules of its API documentation."""

    ws_url: str = "wss://stream.binance.com:9443"
    rest_url: str = "https://api.binance.com"
    max_streams_per_connection: int = Field(1024, ge=1, le=1024)
    max_messages_per_second: float = Field(5.0, gt=0, le=5)
    rest_weight_per_minute: int = Field(6000, ge=1)
    backfill_page_size: int = Field(1000, ge=1, le=1000)
