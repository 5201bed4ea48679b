"""Where a simulated asset is listed: the venue, its spelling of the pair, its tick and lot.

One asset (BTC) can be listed on several venues, each spelling the pair its own way:
Binance `BTCUSDT`, Coinbase `BTC-USD`, Kraken `BTC/USD`. Ticks and lots follow the venue
where it is known to differ from Binance's (Kraken's BTC/USD ticks 0.1, Coinbase and Kraken
lots are 1e-8).

A stock (kind "stock") is listed on a stock venue (Finnhub): the equity `AAPL-USD`, spelt
`AAPL`, in cent ticks and whole shares. Its fair value is its own, never a crypto's of the
same ticker (`MultiVenueMarket` keys fair values by kind and asset).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from marketpipe.model.symbols import USD_LIKE, equity_symbol, equity_ticker, normalize, symbol_kind
from marketpipe.simulator.columns import UNITS
from marketpipe.simulator.finnhub.feed import stock_spec
from marketpipe.simulator.symbols import SymbolSpec, symbol_spec

ListingKind = Literal["crypto", "stock"]
CRYPTO_VENUES = ("binance", "coinbase", "kraken")
STOCK_VENUES = ("finnhub",)
DEFAULT_STOCKS = ("AAPL", "MSFT")
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
    asset: str  # what one fair value is shared across venues for: `BTC` (in USD), `ETH-BTC`,
    # the ticker `AAPL` for a stock
    kind: ListingKind = "crypto"

    @property
    def fair_key(self) -> str:
        """The name of the fair value this listing trades at: a stock's is apart from a
        crypto's of the same ticker."""
        return f"stock:{self.asset}" if self.kind == "stock" else self.asset


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


def listing(venue: str, symbol: str, kind: ListingKind | None = None) -> Listing:
    """`symbol` (any common spelling; a bare ticker for a stock) on `venue`, of the kind the
    venue lists unless given: stocks on Finnhub, crypto pairs elsewhere."""
    venue_kind: ListingKind = "stock" if symbol_kind(venue) == "equity" else "crypto"
    kind = venue_kind if kind is None else kind
    if kind != venue_kind:
        lists = "stocks" if venue_kind == "stock" else "crypto pairs"
        raise ValueError(f"{venue} lists {lists}, not the {kind} {symbol!r}")
    if kind == "stock":
        equity = equity_symbol(symbol)
        ticker = equity_ticker(equity)
        return Listing(venue, equity, ticker, ticker, "stock")
    normalized = normalize(symbol)
    return Listing(venue, normalized, native_spelling(venue, normalized), asset_of(normalized))


def listing_spec(item: Listing, seed: int = 0) -> SymbolSpec:
    """The market parameters of a listing: Binance's for the pair, with the venue's
    spelling, tick and lot; a stock's own (cent ticks, whole shares)."""
    if item.kind == "stock":
        return stock_spec(item.native, seed)
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
    """The demo's listings on `venue`: `assets` in USDT on Binance and in USD on the other
    crypto venues; AAPL and MSFT (`AAPL-USD`) on a stock venue."""
    if symbol_kind(venue) == "equity":
        return [equity_symbol(ticker) for ticker in DEFAULT_STOCKS]
    quote = "USDT" if venue == "binance" else "USD"
    return [f"{asset}-{quote}" for asset in assets]
