"""Binance connector settings: endpoints and the connection rules of Binance's spot API.

Declared with the connector (sources own their settings); `marketpipe.config` composes them.
"""

from pydantic import BaseModel, ConfigDict, Field


class BinanceSettings(BaseModel):
    """Binance spot endpoints and the connection rules of its API documentation."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key fails at start

    enabled: bool = True
    ws_url: str = "wss://stream.binance.com:9443"
    rest_url: str = "https://api.binance.com"
    max_streams_per_connection: int = Field(1024, ge=1, le=1024)
    max_messages_per_second: float = Field(5.0, gt=0, le=5)
    # Binance cuts every connection at 24 h; we rotate before that on our own terms.
    reconnect_after_s: float = Field(23 * 3600, gt=0)
    silence_timeout_s: float = Field(30.0, gt=0)
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    rest_weight_per_minute: int = Field(6000, ge=1)
    rest_timeout_s: float = Field(10.0, gt=0)
    backfill_page_size: int = Field(1000, ge=1, le=1000)
