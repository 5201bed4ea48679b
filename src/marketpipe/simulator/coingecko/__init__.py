"""The simulated CoinGecko: `/api/v3/coins/markets` priced at the synthetic market's fair
values, with fixed supplies, a per-IP rate limit answering 429 + Retry-After, and the fault
plan's REST faults."""

from marketpipe.simulator.coingecko.coins import BY_ID, COINS, SimulatedCoin
from marketpipe.simulator.coingecko.front import CoinGeckoFront, iso_ms
from marketpipe.simulator.coingecko.prices import (
    PriceSource,
    StandaloneFairValues,
    market_prices,
)

__all__ = [
    "BY_ID",
    "COINS",
    "CoinGeckoFront",
    "PriceSource",
    "SimulatedCoin",
    "StandaloneFairValues",
    "iso_ms",
    "market_prices",
]
