"""Symbol normalization: exchange-native `BTCUSDT` <-> marketpipe's `BTC-USDT`, both ways."""

from collections.abc import Iterable, Mapping

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


def comparable_asset(symbol: str) -> str | None:
    """What a normalized symbol is priced as across venues: `BTC-USDT` and `BTC-USD` are both
    `BTC-USD`; `BTC-EUR` stays itself. None for a symbol that is not `BASE-QUOTE`."""
    base, sep, quote = symbol.partition("-")
    if not sep or not base or not quote:
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
