"""Symbols: exchange-native `BTCUSDT` <-> marketpipe's `BTC-USDT`, both ways; pairs and equities.

A symbol is one of two kinds, both spelt `BASE-QUOTE` in records:
- a **pair** (`BTC-USDT`): a crypto base in a quote asset;
- an **equity** (`AAPL-USD`): a stock ticker and the currency it is priced in. Finnhub's
  `AAPL` is `AAPL-USD` in the house form; the quote is dropped again at the venue's edge.
The spelling alone cannot tell `AAPL-USD` the stock from a crypto token called AAPL, so the
kind comes from the venue (`EQUITY_VENUES`): `instrument(symbol, exchange)`. Comparing venues
(`comparable_asset`) never puts an equity with a pair of the same ticker.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

# The default universe: the 20 most-watched USDT pairs.
DEFAULT_SYMBOLS: tuple[str, ...] = tuple(
    f"{base}-USDT"
    for base in (
        "BTC ETH SOL ADA DOT AVAX LINK POL XRP BNB DOGE SHIB LTC ATOM NEAR APT ARB OP INJ SUI"
    ).split()
)

# Quote assets tried longest-first when no exchangeInfo is at hand to split a native symbol.
KNOWN_QUOTES: tuple[str, ...] = tuple(
    sorted(
        (
            "USDT",
            "USDC",
            "FDUSD",
            "TUSD",
            "BUSD",
            "DAI",
            "BTC",
            "ETH",
            "BNB",
            "EUR",
            "GBP",
            "TRY",
            "BRL",
            "JPY",
            "AUD",
            "USD",
            "XRP",
            "DOGE",
            "SOL",
            "TRX",
        ),
        key=len,
        reverse=True,
    )
)


def split_native(native: str) -> tuple[str, str]:
    """Split `BTCUSDT` into `("BTC", "USDT")` by known quote assets; ValueError if it cannot."""
    upper = native.upper()
    for quote in KNOWN_QUOTES:
        if upper.endswith(quote) and len(upper) > len(quote):
            return upper[: -len(quote)], quote
    raise ValueError(f"cannot split symbol {native!r} into base and quote")


def normalize(symbol: str) -> str:
    """Any common spelling (`BTCUSDT`, `btcusdt`, `BTC-USDT`, `BTC/USDT`) to `BTC-USDT`."""
    cleaned = symbol.strip().upper().replace("/", "-").replace("_", "-")
    if "-" in cleaned:
        base, _, quote = cleaned.partition("-")
        if not base or not quote or "-" in quote:
            raise ValueError(f"malformed symbol {symbol!r}")
        return f"{base}-{quote}"
    base, quote = split_native(cleaned)
    return f"{base}-{quote}"


# Quotes a trader reads as dollars when comparing venues (Binance's BTC-USDT with Coinbase's
# BTC-USD).
USD_LIKE: frozenset[str] = frozenset({"USD", "USDT", "USDC", "FDUSD", "TUSD", "BUSD", "DAI"})


# -- equities ---------------------------------------------------------------------------------

SymbolKind = Literal["pair", "equity"]
# Venues whose symbols are equities (stock tickers), not crypto pairs.
EQUITY_VENUES: Final = frozenset({"finnhub"})
EQUITY_QUOTE: Final = "USD"  # US listings: the house form of a bare ticker is TICKER-USD
# Prefix that keeps an equity's comparable asset apart from a pair's of the same ticker.
EQUITY_ASSET_PREFIX: Final = "equity:"
# 1 to 15 of A-Z, 0-9 and `.`, starting with a letter (US share classes: `BRK.B`).
_TICKER = re.compile(r"[A-Z][A-Z0-9.]{0,14}")


def symbol_kind(exchange: str | None) -> SymbolKind:
    """What the symbols of `exchange` are; without a venue, a pair."""
    return "equity" if exchange is not None and exchange.lower() in EQUITY_VENUES else "pair"


def is_ticker(text: str) -> bool:
    """A US stock ticker as venues spell it: `AAPL`, `BRK.B`."""
    return _TICKER.fullmatch(text) is not None


def equity_symbol(ticker: str, quote: str = EQUITY_QUOTE) -> str:
    """`aapl`, `AAPL` or `AAPL-USD` -> `AAPL-USD`; ValueError for anything else."""
    cleaned = ticker.strip().upper()
    suffix = f"-{quote.upper()}"
    if cleaned.endswith(suffix):
        cleaned = cleaned[: -len(suffix)]
    if not is_ticker(cleaned):
        raise ValueError(f"{ticker!r} is not a US stock ticker (e.g. AAPL, BRK.B)")
    return f"{cleaned}{suffix}"


def equity_ticker(symbol: str) -> str:
    """`AAPL-USD` (or `AAPL`) -> the venue's `AAPL`."""
    return equity_symbol(symbol).rpartition("-")[0]


@dataclass(frozen=True, slots=True)
class Instrument:
    """A normalized symbol with its kind: what trades, in what, and how venues compare it."""

    base: str  # `BTC`, or the ticker `AAPL`
    quote: str  # `USDT`, `USD`
    kind: SymbolKind

    @property
    def symbol(self) -> str:
        return f"{self.base}-{self.quote}"

    @property
    def usd_like(self) -> bool:
        return self.quote in USD_LIKE

    @property
    def comparable_asset(self) -> str:
        """What this is priced as across venues: dollar quotes are one market (`BTC-USDT` and
        `BTC-USD` are both `BTC-USD`); an equity is `equity:AAPL-USD`, never a pair's."""
        asset = f"{self.base}-USD" if self.usd_like else self.symbol
        return f"{EQUITY_ASSET_PREFIX}{asset}" if self.kind == "equity" else asset


def instrument(symbol: str, exchange: str | None = None) -> Instrument:
    """`symbol` (any common spelling; a bare ticker on an equity venue) as an Instrument of
    the kind `exchange` lists. ValueError for a symbol that is neither."""
    if symbol_kind(exchange) == "equity":
        base, _, quote = equity_symbol(symbol).rpartition("-")
        return Instrument(base, quote, "equity")
    base, _, quote = normalize(symbol).partition("-")
    return Instrument(base, quote, "pair")


def comparable_asset(symbol: str, exchange: str | None = None) -> str | None:
    """What a normalized symbol of `exchange` is priced as across venues: `BTC-USDT` and
    `BTC-USD` are both `BTC-USD`; `BTC-EUR` stays itself; Finnhub's `AAPL-USD` is
    `equity:AAPL-USD`, apart from any crypto `AAPL-USD`. Without `exchange`, a pair. None for
    a symbol that is not `BASE-QUOTE` (or not a ticker on an equity venue)."""
    base, sep, quote = symbol.partition("-")
    if not sep or not base or not quote:
        return None
    if symbol_kind(exchange) == "equity":
        try:
            return instrument(symbol, exchange).comparable_asset
        except ValueError:
            return None
    return f"{base}-USD" if quote in USD_LIKE else symbol


def to_native(symbol: str) -> str:
    """`BTC-USDT` to Binance's `BTCUSDT`."""
    return normalize(symbol).replace("-", "")


class SymbolMap:
    """Both-way map for one exchange, seeded from exchangeInfo where available."""

    def __init__(self, pairs: Mapping[str, tuple[str, str]] | None = None) -> None:
        self._to_norm: dict[str, str] = {}
        self._to_native: dict[str, str] = {}
        for native, (base, quote) in (pairs or {}).items():
            self.add(native, base, quote)

    @classmethod
    def from_exchange_info(cls, symbols: Iterable[Mapping[str, object]]) -> "SymbolMap":
        """Build from exchangeInfo's `symbols` entries (`symbol`, `baseAsset`, `quoteAsset`)."""
        return cls({str(s["symbol"]): (str(s["baseAsset"]), str(s["quoteAsset"])) for s in symbols})

    def add(self, native: str, base: str, quote: str) -> None:
        normalized = f"{base.upper()}-{quote.upper()}"
        self._to_norm[native.upper()] = normalized
        self._to_native[normalized] = native.upper()

    def normalize(self, native: str) -> str:
        found = self._to_norm.get(native.upper())
        return found if found is not None else normalize(native)

    def native(self, symbol: str) -> str:
        normalized = normalize(symbol)
        found = self._to_native.get(normalized)
        return found if found is not None else normalized.replace("-", "")
