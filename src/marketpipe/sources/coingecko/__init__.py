"""CoinGecko market data (`/coins/markets`): price, market cap, FDV, 24 h volume, supply and
rank per coin, polled over REST as `MarketSnapshot` records. Not a trade venue: no
WebSocket, no trade ids, so it has no `VenueSpec`; `MarketPoller` is its whole source."""

from marketpipe.sources.coingecko.client import MarketsClient, RateLimited, Refused, Unavailable
from marketpipe.sources.coingecko.coins import COIN_IDS, coin_id
from marketpipe.sources.coingecko.markets import SOURCE, ParsedMarkets, parse_markets
from marketpipe.sources.coingecko.poller import MarketPoller, PollerStatus
from marketpipe.sources.coingecko.settings import API_KEY_HEADER, CoinGeckoSettings

__all__ = [
    "API_KEY_HEADER",
    "COIN_IDS",
    "SOURCE",
    "CoinGeckoSettings",
    "MarketPoller",
    "MarketsClient",
    "ParsedMarkets",
    "PollerStatus",
    "RateLimited",
    "Refused",
    "Unavailable",
    "coin_id",
    "parse_markets",
]
