"""What the simulated CoinGecko prices a coin at: the synthetic market's fair value.

Over a `MultiVenueMarket` the price is its asset's shared fair value (`fair_price`), the
very value every simulated venue trades around, so CoinGecko agrees with the venues as an
aggregator of them would. Without one (Binance alone), `StandaloneFairValues` builds the
same fair-value paths from the same seed: equal seed and start give equal prices.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np

from marketpipe.simulator.fairvalue import FairValue
from marketpipe.simulator.multivenue import MultiVenueMarket
from marketpipe.simulator.symbols import SECONDS_PER_YEAR, symbol_spec

# (asset such as "BTC", time in µs) -> its USD price
PriceSource = Callable[[str, int], float]


def market_prices(market: MultiVenueMarket) -> PriceSource:
    """The fair values of a multi-venue market."""

    def price(asset: str, t_us: int) -> float:
        return float(market.fair_price(asset, t_us))

    return price


class StandaloneFairValues:
    """Fair-value paths built as `MultiVenueMarket` builds them, for a market without one."""

    def __init__(self, seed: int, start_us: int) -> None:
        self.seed = seed
        self.start_us = start_us
        self._paths: dict[str, FairValue] = {}

    def __call__(self, asset: str, t_us: int) -> float:
        path = self._paths.get(asset)
        if path is None:
            spec = symbol_spec(f"{asset}-USD", self.seed)
            annual = spec.vol_per_sqrt_s * SECONDS_PER_YEAR**0.5
            # The seed of MultiVenueMarket's "fair:<asset>" path, so both agree.
            seq = np.random.SeedSequence(
                [self.seed & 0xFFFFFFFF, zlib.crc32(f"fair:{asset}".encode())]
            )
            path = self._paths[asset] = FairValue(spec.start_price, annual, seq, self.start_us)
        return float(np.exp(path.at(t_us)))
