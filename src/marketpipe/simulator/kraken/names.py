"""Kraken's spellings of a pair: WebSocket v2 `BTC/USD`, REST altname `XBTUSD`, and the
internal name REST keys its results by (`XXBTZUSD`: class prefixes on the oldest assets)."""

from __future__ import annotations

_KRAKEN_CODE = {"BTC": "XBT", "DOGE": "XDG"}
# Assets listed before Kraken dropped the X (crypto) and Z (fiat) class prefixes.
_LEGACY_CRYPTO = frozenset({"XBT", "ETH", "LTC", "XRP", "XLM", "ETC", "ZEC", "XMR", "XDG", "MLN"})
_LEGACY_FIAT = frozenset({"USD", "EUR", "GBP", "CAD", "JPY"})


def code(asset: str) -> str:
    return _KRAKEN_CODE.get(asset, asset)


def altname(base: str, quote: str) -> str:
    """`BTC`, `USD` -> `XBTUSD`."""
    return f"{code(base)}{code(quote)}"


def internal_name(base: str, quote: str) -> str:
    """`BTC`, `USD` -> `XXBTZUSD`; `SOL`, `USD` -> `SOLUSD`."""
    b, q = code(base), code(quote)
    if b not in _LEGACY_CRYPTO:
        return f"{b}{q}"
    prefix = "Z" if q in _LEGACY_FIAT else "X" if q in _LEGACY_CRYPTO else ""
    return f"X{b}{prefix}{q}"


def internal_asset(asset: str) -> str:
    """`BTC` -> `XXBT`, `USD` -> `ZUSD`, `SOL` -> `SOL`."""
    c = code(asset)
    return f"X{c}" if c in _LEGACY_CRYPTO else f"Z{c}" if c in _LEGACY_FIAT else c
