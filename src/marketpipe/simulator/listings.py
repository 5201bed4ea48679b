"""Where a simulated asset is listed: the venue, its spelling of the pair, its tick and lot.

One asset (BTC) can be listed on several venues, each spelling the pair its own way:
Binance `BTCUSDT`, Coinbase `BTC-USD`, Kraken `BTC/USD`. Ticks and lots follow the venue
where it is known to differ from Binance's (Kraken's BTC/USD ticks 0.1, Coinbase and Kraken
lots are 1e-8). The listing kind leaves room for stocks (Finnhub), which have no front yet.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from marketpipe.model.symbols import USD_LIKE, normalize
from marketpipe.simulator.columns import UNITS
from marketpipe.simulator.symbols import SymbolSpec, symbol_spec

ListingKind = Literal["crypto", "stock"]
CRYPTO_VENUES = ("binance", "coinbase", "kraken")
# (venue, normalized symbol) -> (tick, lot step) where the venue's differ from Binance's.
_VENUE_SIZES: dict[tuple[str, str], tuple[float, float]] = {
    ("kraken", "BTC-USD"): (0.1, 1e-8),
    ("kraken", "ETH-USD"): (0.01, 1e-8),
    ("coinbase", "BTC-USD"): (0.01, 1e-8),
    ("coinbase", "ETH-USD"): (0.01, 1e-8),
}
# Every venue but Binance sizes lots in 1e-8 unless listed above.
_DEFAULT_STEP = {"coinbase": 1e-8, "kraken": 1e-8}


@dataclass(frozen=True, slots=True)
class Listing:
    venue: str  # lowercase, as the records spell it
    symbol: str  # normalized `BTC-USD`
    native: str  # the venue's spelling: `BTCUSDT`, `BTC-USD`, `BTC/USD`
    asset: str  # what one fair value is shared across venues for: `BTC` (in USD), `ETH-BTC`
    kind: ListingKind = "crypto"


def native_spelling(venue: str, symbol: str) -> str:
    """`BTC-USD` as `venue` spells it."""
    base, _, quote = normalize(symbol).partition("-")
    if venue == "binance":
        return f"{base}{quote}"
    if venue == "kraken":
        return f"{base}/{quote}"
    return f"{base}-{quote}"  # Coinbase, and ours


def asset_of(symbol: str) -> str:
    """The shared fair value a pair trades at: its base in USD when quoted in a dollar."""
    base, _, quote = normalize(symbol).partition("-")
    return base if quote in USD_LIKE else f"{base}-{quote}"


def listing(venue: str, symbol: str, kind: ListingKind = "crypto") -> Listing:
    """A crypto pair (any common spelling) on `venue`."""
    if kind != "crypto":
        raise ValueError(f"{kind} listings ({symbol} on {venue}) have no simulated front yet")
    normalized = normalize(symbol)
    return Listing(venue, normalized, native_spelling(venue, normalized), asset_of(normalized))


def listing_spec(item: Listing, seed: int = 0) -> SymbolSpec:
    """The market parameters of a listing: Binance's for the pair, with the venue's
    spelling, tick and lot."""
    spec = symbol_spec(item.symbol, seed)
    tick, step = _VENUE_SIZES.get(
        (item.venue, item.symbol), (spec.tick, _DEFAULT_STEP.get(item.venue, spec.step))
    )
    tick_units, step_units = max(1, round(tick * UNITS)), max(1, round(step * UNITS))
    start = round(spec.start_price * UNITS / tick_units) * tick_units / UNITS
    return replace(
        spec, native=item.native, tick_units=tick_units, step_units=step_units, start_price=start
    )


def default_symbols(venue: str, assets: tuple[str, ...] = ("BTC", "ETH")) -> list[str]:
    """The demo's pairs of `assets` on `venue`: USDT on Binance, USD elsewhere."""
    quote = "USDT" if venue == "binance" else "USD"
    return [f"{asset}-{quote}" for asset in assets]
