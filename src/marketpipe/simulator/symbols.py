"""What the synthetic market trades: per-symbol price level, tick and step sizes, activity.

Known coins start near their mid-2024 prices with Binance's real tick and lot sizes; an
unknown symbol gets a seeded, plausible price and sizes derived from it.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

from marketpipe.model.symbols import normalize, split_native, to_native
from marketpipe.simulator.columns import UNITS

# base -> (USD price, tick size, lot step, share of activity, annualized volatility)
_KNOWN: dict[str, tuple[float, float, float, float, float]] = {
    "BTC": (60_000.0, 0.01, 0.00001, 1.0, 0.55),
    "ETH": (3_000.0, 0.01, 0.0001, 0.6, 0.65),
    "SOL": (150.0, 0.01, 0.001, 0.4, 0.85),
    "BNB": (550.0, 0.01, 0.001, 0.25, 0.6),
    "XRP": (0.55, 0.0001, 0.1, 0.25, 0.8),
    "DOGE": (0.11, 0.00001, 1.0, 0.25, 0.95),
    "ADA": (0.35, 0.0001, 0.1, 0.12, 0.85),
    "DOT": (5.5, 0.001, 0.01, 0.08, 0.85),
    "AVAX": (25.0, 0.01, 0.01, 0.1, 0.9),
    "LINK": (12.0, 0.01, 0.01, 0.1, 0.85),
    "POL": (0.4, 0.0001, 0.1, 0.06, 0.9),
    "SHIB": (0.000015, 0.00000001, 1.0, 0.1, 1.0),
    "LTC": (65.0, 0.01, 0.001, 0.08, 0.7),
    "ATOM": (5.0, 0.001, 0.01, 0.06, 0.85),
    "NEAR": (4.5, 0.001, 0.1, 0.08, 0.95),
    "APT": (6.5, 0.001, 0.01, 0.06, 0.95),
    "ARB": (0.55, 0.0001, 0.1, 0.06, 0.95),
    "OP": (1.4, 0.001, 0.01, 0.06, 0.95),
    "INJ": (20.0, 0.01, 0.01, 0.05, 1.0),
    "SUI": (0.9, 0.0001, 0.1, 0.08, 1.0),
}
_STABLES = {"USDT", "USDC", "FDUSD", "TUSD", "BUSD", "DAI", "USD"}
SECONDS_PER_YEAR = 365.25 * 86400


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    symbol: str  # normalized `BTC-USDT`
    native: str  # `BTCUSDT`
    base: str
    quote: str
    start_price: float  # in the quote asset
    tick_units: int  # price tick in 1e-8
    step_units: int  # lot step in 1e-8
    weight: float  # relative share of the market's trades
    vol_per_sqrt_s: float  # stdev of the log price per sqrt(second)
    usd_per_quote: float  # to size trades in dollars

    @property
    def tick(self) -> float:
        return self.tick_units / UNITS

    @property
    def step(self) -> float:
        return self.step_units / UNITS


def _units(value: float) -> int:
    return max(1, round(value * UNITS))


def _usd_price(asset: str, seed: int) -> float:
    if asset in _STABLES:
        return 1.0
    if asset in _KNOWN:
        return _KNOWN[asset][0]
    # Unknown coin: a stable, seeded price between $0.05 and $500.
    h = zlib.crc32(f"{asset}:{seed}".encode()) / 0xFFFFFFFF
    return float(10 ** (-1.3 + 4.0 * h))


def _pow10_floor(x: float) -> float:
    return float(10 ** math.floor(math.log10(x)))


def symbol_spec(symbol: str, seed: int = 0) -> SymbolSpec:
    """The trading parameters of one symbol (any spelling: `BTCUSDT`, `BTC-USDT`)."""
    normalized = normalize(symbol)
    base, quote = normalized.split("-")
    base_usd, quote_usd = _usd_price(base, seed), _usd_price(quote, seed)
    price = base_usd / quote_usd
    if base in _KNOWN and quote in _STABLES:
        _, tick, step, weight, annual_vol = _KNOWN[base]
    else:
        # About five significant digits of price, and a lot worth cents to a dollar.
        tick = min(0.01, max(1e-8, _pow10_floor(price) * 1e-4))
        step = min(1.0, max(1e-8, _pow10_floor(1.0 / base_usd)))
        weight, annual_vol = 0.05, 0.9
    return SymbolSpec(
        symbol=normalized,
        native=to_native(normalized),
        base=base,
        quote=quote,
        start_price=round(price / tick) * tick,
        tick_units=_units(tick),
        step_units=_units(step),
        weight=weight,
        vol_per_sqrt_s=annual_vol / math.sqrt(SECONDS_PER_YEAR),
        usd_per_quote=quote_usd,
    )


def split_symbol(symbol: str) -> tuple[str, str]:
    """`BTC-USDT` or `BTCUSDT` -> `("BTC", "USDT")`."""
    if "-" in symbol:
        base, _, quote = normalize(symbol).partition("-")
        return base, quote
    return split_native(symbol)
