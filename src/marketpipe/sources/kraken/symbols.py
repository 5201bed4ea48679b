"""Kraken's three spellings of a pair, mapped to and from ours (`BTC-USD`).

- WebSocket v2 spells pairs `BTC/USD`; v1 (our recordings) spells them `XBT/USD`.
- REST takes the pair's altname (`XBTUSD`) and keys its result by the internal name, which for
  the oldest assets carries a class prefix: `X` for crypto, `Z` for fiat (`XXBTZUSD`,
  `XETHXXBT`); newer pairs have none (`SOLUSD`).

Kraken's own asset codes differ from everyone else's for two coins: XBT is BTC and XDG is DOGE.
"""

from typing import Final

from marketpipe.model.symbols import normalize

# Kraken's code -> the common one, and back.
_COMMON: Final = {"XBT": "BTC", "XDG": "DOGE"}
_KRAKEN: Final = {common: kraken for kraken, common in _COMMON.items()}
# Quote assets Kraken lists pairs in, longest first, to split an altname with no separator.
_QUOTES: Final = tuple(
    sorted(
        ("USD", "EUR", "GBP", "CAD", "JPY", "CHF", "AUD", "USDT", "USDC", "XBT", "ETH", "DAI"),
        key=len,
        reverse=True,
    )
)
_LEGACY_PREFIXES: Final = frozenset("XZ")


def common_asset(asset: str) -> str:
    upper = asset.upper()
    return _COMMON.get(upper, upper)


def kraken_asset(asset: str) -> str:
    upper = asset.upper()
    return _KRAKEN.get(upper, upper)


def canonical(symbol: str) -> str:
    """Any spelling of a pair (`XBT/USD`, `xbt-usd`, `BTC/USD`, `XBTUSD`) as ours: `BTC-USD`."""
    if not any(sep in symbol for sep in "-/_"):
        return from_rest(symbol.strip())  # Kraken's quotes split it (`XBTUSD` is not XB-TUSD)
    base, _, quote = normalize(symbol).partition("-")
    return f"{common_asset(base)}-{common_asset(quote)}"


def from_ws(pair: str) -> str:
    """A WebSocket pair, v2 `BTC/USD` or v1 `XBT/USD`, as `BTC-USD`; ValueError if malformed."""
    if pair.count("/") != 1:
        raise ValueError(f"Kraken pair {pair!r} is not BASE/QUOTE")
    return canonical(pair)


def to_ws(symbol: str) -> str:
    """`BTC-USD` as WebSocket v2 spells it: `BTC/USD`."""
    return canonical(symbol).replace("-", "/")


def to_rest(symbol: str) -> str:
    """`BTC-USD` as the REST `pair` parameter: its altname, `XBTUSD`."""
    base, _, quote = canonical(symbol).partition("-")
    return f"{kraken_asset(base)}{kraken_asset(quote)}"


def from_rest(name: str) -> str:
    """A REST pair name, altname (`XBTUSD`) or internal (`XXBTZUSD`), as `BTC-USD`."""
    upper = name.upper()
    if len(upper) == 8 and upper[0] in _LEGACY_PREFIXES and upper[4] in _LEGACY_PREFIXES:
        return f"{common_asset(upper[1:4])}-{common_asset(upper[5:8])}"
    for quote in _QUOTES:
        if upper.endswith(quote) and len(upper) > len(quote):
            return f"{common_asset(upper[: -len(quote)])}-{common_asset(quote)}"
    raise ValueError(f"cannot split Kraken pair {name!r} into base and quote")
