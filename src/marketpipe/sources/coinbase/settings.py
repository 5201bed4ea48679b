"""Coinbase Exchange connector settings: endpoints and the documented limits of its APIs.

From Coinbase Exchange's documentation ("Rate Limits", "Pagination"):
- WebSocket: 8 requests a second per IP (bursts of 20), and 100 messages a second sent by the
  client per IP; at most 10 subscriptions per product per channel (a duplicate subscription
  on a second connection counts).
- A connection that has not subscribed within 5 seconds is closed: the supervisor sends the
  subscribe right after connecting.
- Public REST: 10 requests a second per IP, bursts of 15; beyond that HTTP 429.
- Paginated REST answers at most 1000 items (`limit`).
"""

from typing import Annotated

from pydantic import Field
from pydantic_settings import NoDecode

from marketpipe.sources.venue import VenueSettings

DEFAULT_SYMBOLS = ("BTC-USD", "ETH-USD")


class CoinbaseSettings(VenueSettings):
    """Coinbase Exchange endpoints, limits and back-fill tuning."""

    ws_url: str = "wss://ws-feed.exchange.coinbase.com"
    rest_url: str = "https://api.exchange.coinbase.com"
    symbols: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_SYMBOLS))
    # Subscribe messages we send: under the documented 8 requests/s per IP.
    max_messages_per_second: float = Field(8.0, gt=0, le=8)
    # Subscriptions per product and channel. Each product is on one connection only, but a
    # planned rotation overlaps the old and new connection: two at once, so at least 2.
    max_subscriptions_per_product_channel: int = Field(10, ge=2)
    # How many products one connection subscribes to (not a Coinbase limit: our choice, so
    # one connection's frame rate stays modest). More products: more connections.
    products_per_connection: int = Field(100, ge=1)
    rest_requests_per_second: float = Field(10.0, gt=0, le=10)
    # Pause after a 429 that names no Retry-After (Coinbase's limits are per second).
    rate_limit_pause_s: float = Field(1.0, gt=0)
    backfill_page_size: int = Field(1000, ge=1, le=1000)
