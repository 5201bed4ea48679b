"""One market, many venues: each asset has one fair value, each venue its own trades.

`MultiVenueMarket` builds one `SyntheticMarket` per venue over the venue's listings. The
venues share each asset's fair-value path (`fairvalue.FairValue`) and add their own basis
(a clipped mean-reverting offset of about a basis point) and any divergence episode; their
arrivals, sides, sizes and trade ids are their own. All of it is deterministic per seed:
the same seed, listings and start give the same trades on every venue. A stock venue
(Finnhub) lists equities (`AAPL-USD`), whose fair values are their own: a stock never shares
a path with a crypto of the same ticker.

    market = MultiVenueMarket(
        {"binance": ["BTC-USDT"], "coinbase": ["BTC-USD"], "kraken": ["BTC-USD"]},
        trades_per_second=50,
        seed=7,
        divergences=[Divergence("kraken", "BTC", bps=80, start_s=30, duration_s=20)],
    )
    market.market("coinbase")  # a SyntheticMarket whose trades say exchange="coinbase"
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from marketpipe.simulator.divergence import Divergence, log_offsets
from marketpipe.simulator.fairvalue import FairValue, VenueBasis
from marketpipe.simulator.finnhub.feed import stock_spec
from marketpipe.simulator.listings import Listing, listing, listing_spec
from marketpipe.simulator.market import PricePath, SyntheticMarket
from marketpipe.simulator.symbols import SECONDS_PER_YEAR, symbol_spec

F64 = npt.NDArray[np.float64]
# Venues whose trade times are whole milliseconds; the others print microseconds.
_MS_VENUES = frozenset({"binance", "finnhub"})


def _seed(seed: int, name: str) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed & 0xFFFFFFFF, zlib.crc32(name.encode())])


class MultiVenueMarket:
    """Synthetic markets of several venues over shared fair values."""

    def __init__(
        self,
        listings: Mapping[str, Sequence[str]],
        trades_per_second: float | Mapping[str, float],
        seed: int,
        start_us: int | None = None,
        *,
        divergences: Iterable[Divergence] = (),
        first_ids: Mapping[str, Mapping[str, int]] | None = None,
        basis_bps: float = 1.0,
        max_basis_bps: float = 3.0,
    ) -> None:
        """`listings`: venue -> its symbols (any common spelling); `trades_per_second`:
        per venue, one number for all or a mapping; `first_ids`: venue -> symbol -> the
        first trade id (see `SyntheticMarket`)."""
        if not listings:
            raise ValueError("MultiVenueMarket needs at least one venue")
        self.seed = seed
        self.start_us = time.time_ns() // 1000 if start_us is None else start_us
        self.divergences = tuple(divergences)
        self._listings = {v: [listing(v, s) for s in symbols] for v, symbols in listings.items()}
        self._fair: dict[str, FairValue] = {}
        self._basis: dict[tuple[str, str], VenueBasis] = {}
        self._basis_bps, self._max_basis_bps = basis_bps, max_basis_bps
        known = {e.venue for e in self.divergences} - set(listings)
        if known:
            raise ValueError(f"divergence on a venue with no listings: {sorted(known)}")
        self._markets: dict[str, SyntheticMarket] = {}
        for venue, items in self._listings.items():
            rate = (
                trades_per_second
                if isinstance(trades_per_second, int | float)
                else trades_per_second[venue]
            )
            self._markets[venue] = SyntheticMarket(
                [item.symbol for item in items],
                float(rate),
                int(_seed(seed, f"venue:{venue}").generate_state(1)[0]),
                self.start_us,
                first_ids=(first_ids or {}).get(venue),
                exchange=venue,
                specs=[listing_spec(item, seed) for item in items],
                price_path=self._path_of(venue),
                time_step_us=1000 if venue in _MS_VENUES else 1,
            )

    @property
    def venues(self) -> list[str]:
        return list(self._markets)

    def market(self, venue: str) -> SyntheticMarket:
        try:
            return self._markets[venue]
        except KeyError:
            raise KeyError(f"no venue {venue!r}; this market has {self.venues}") from None

    def listings(self, venue: str) -> list[Listing]:
        return list(self._listings[venue])

    def fair_price(self, asset: str, t_us: npt.ArrayLike) -> F64:
        """The asset's shared fair value (USD, or the pair's quote) at `t_us`; a stock's as
        `stock:AAPL` (`Listing.fair_key`)."""
        return np.exp(self._fair_value(asset).at(t_us))

    def venue_price(self, venue: str, asset: str, t_us: npt.ArrayLike) -> F64:
        """The venue's mid price before ticks: fair value, basis and divergence."""
        t = np.asarray(t_us, dtype=np.float64)
        return np.exp(self._log_price(venue, asset, t))

    # -- internals ------------------------------------------------------------------------------

    def _fair_value(self, key: str) -> FairValue:
        path = self._fair.get(key)
        if path is None:
            if key.startswith("stock:"):
                spec = stock_spec(key.removeprefix("stock:"), self.seed)
            else:
                spec = symbol_spec(key if "-" in key else f"{key}-USD", self.seed)
            annual = spec.vol_per_sqrt_s * SECONDS_PER_YEAR**0.5
            path = FairValue(
                spec.start_price, annual, _seed(self.seed, f"fair:{key}"), self.start_us
            )
            self._fair[key] = path
        return path

    def _fair_key(self, venue: str, asset: str) -> str:
        for item in self._listings.get(venue, ()):
            if item.asset == asset:
                return item.fair_key
        return asset

    def _log_price(self, venue: str, asset: str, t: F64) -> F64:
        basis = self._basis.get((venue, asset))
        if basis is None:
            basis = VenueBasis(
                _seed(self.seed, f"basis:{venue}:{asset}"),
                self.start_us,
                self._basis_bps,
                max_bps=self._max_basis_bps,
            )
            self._basis[(venue, asset)] = basis
        offsets = log_offsets(self.divergences, venue, asset, self.start_us, t)
        return self._fair_value(self._fair_key(venue, asset)).at(t) + basis.at(t) + offsets

    def _path_of(self, venue: str) -> PricePath:
        assets = {item.symbol: item.asset for item in self._listings[venue]}

        def path(symbol: str, t_us: F64) -> F64:
            return self._log_price(venue, assets[symbol], t_us)

        return path
