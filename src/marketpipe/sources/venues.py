"""Every venue marketpipe speaks, by name: its settings section and how to build its spec.

Adding a venue is one folder under `sources/` plus one line here (and its settings section in
`config.py`); the connector, the live run, the demo and the API take it from there.
"""

from collections.abc import Callable
from dataclasses import dataclass

from marketpipe.sources.binance.settings import BinanceSettings
from marketpipe.sources.binance.spec import BinanceSpec
from marketpipe.sources.coinbase.settings import CoinbaseSettings
from marketpipe.sources.coinbase.spec import CoinbaseSpec
from marketpipe.sources.finnhub.settings import FinnhubSettings
from marketpipe.sources.finnhub.spec import FinnhubSpec
from marketpipe.sources.kraken.settings import KrakenSettings
from marketpipe.sources.kraken.spec import KrakenSpec
from marketpipe.sources.venue import VenueSettings, VenueSpec


@dataclass(frozen=True, slots=True)
class VenueEntry:
    name: str
    settings: type[VenueSettings]
    build: Callable[[VenueSettings], VenueSpec]
    # Runs only with an API key configured (`make run` starts every venue that needs none).
    needs_key: bool = False


def _binance(settings: VenueSettings) -> VenueSpec:
    assert isinstance(settings, BinanceSettings)
    return BinanceSpec(settings)


def _coinbase(settings: VenueSettings) -> VenueSpec:
    assert isinstance(settings, CoinbaseSettings)
    return CoinbaseSpec(settings)


def _finnhub(settings: VenueSettings) -> VenueSpec:
    assert isinstance(settings, FinnhubSettings)
    return FinnhubSpec(settings)


def _kraken(settings: VenueSettings) -> VenueSpec:
    assert isinstance(settings, KrakenSettings)
    return KrakenSpec(settings)


VENUES: dict[str, VenueEntry] = {
    "binance": VenueEntry("binance", BinanceSettings, _binance),
    "coinbase": VenueEntry("coinbase", CoinbaseSettings, _coinbase),
    "kraken": VenueEntry("kraken", KrakenSettings, _kraken),
    "finnhub": VenueEntry("finnhub", FinnhubSettings, _finnhub, needs_key=True),
}


def venue(name: str) -> VenueEntry:
    """The venue called `name`; ValueError naming it and the known ones otherwise."""
    found = VENUES.get(name.strip().lower())
    if found is None:
        raise ValueError(f"unknown venue {name!r}; known venues: {', '.join(sorted(VENUES))}")
    return found


# How people spell the names that `str.capitalize` gets wrong.
_DISPLAY_NAMES = {"coingecko": "CoinGecko"}


def display_name(name: str) -> str:
    """`coinbase` -> "Coinbase", `coingecko` -> "CoinGecko": for the lines a user reads."""
    return _DISPLAY_NAMES.get(name, name.capitalize())
