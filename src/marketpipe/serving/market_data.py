"""Aggregator market data (CoinGecko snapshots) as the API serves it: the newest snapshot per
coin, which asset a request means, and the one snapshot that speaks for an asset.

A snapshot is of a coin, not of a pair: `BTC`, priced in `USD`. Requests may name it as a
trader does, in a pair's spelling (`BTC-USD`, `BTCUSDT`, `btc/usdt`): the base asset is meant.
"""

from collections.abc import Iterable
from typing import Final

from marketpipe.model.records import MarketSnapshot
from marketpipe.model.symbols import comparable_asset, normalize

# The quote a snapshot is preferably read in when one asset has several (watchlist, compare).
PREFERRED_VS: Final = "USD"

SnapshotKey = tuple[str, str, str]


def latest_snapshots(snapshots: Iterable[MarketSnapshot]) -> list[MarketSnapshot]:
    """The newest snapshot per (source, asset, vs_currency), by the source's own time and then
    by receipt, so a re-delivered older snapshot never wins. Ordered by market-cap rank (unranked
    last), then asset, source and quote: the order a market-cap list is read in."""
    newest: dict[SnapshotKey, MarketSnapshot] = {}
    for s in snapshots:
        key = (s.source, s.asset, s.vs_currency)
        held = newest.get(key)
        if held is None or (s.ts_source, s.ts_recv) > (held.ts_source, held.ts_recv):
            newest[key] = s
    return sorted(newest.values(), key=_reading_order)


def _reading_order(s: MarketSnapshot) -> tuple[bool, int, str, str, str]:
    rank = s.market_cap_rank
    return (rank is None, rank or 0, s.asset, s.source, s.vs_currency)


def requested_asset(text: str, known: Iterable[str] = ()) -> str:
    """The base asset a request names: `BTC`, `btc`, `BTC-USD`, `BTC/USDT` and `BTCUSDT` are
    all `BTC`. A plain name that is a known asset is taken as it is (so `USDT` stays `USDT`
    rather than failing to split). ValueError for text that names no asset."""
    cleaned = text.strip().upper()
    if not cleaned or not cleaned.replace("-", "").replace("/", "").replace("_", "").isalnum():
        raise ValueError(f"{text!r} is not an asset (BTC) or a symbol (BTC-USD, BTCUSDT)")
    if cleaned in set(known):
        return cleaned
    if any(sep in cleaned for sep in "-/_"):
        # comparable_asset of the normalized pair: BTC-USDT and BTC-USD are one asset.
        asset = comparable_asset(normalize(cleaned))
        if asset is None:
            raise ValueError(f"{text!r} is not BASE-QUOTE")
        return asset.partition("-")[0]
    try:
        return normalize(cleaned).partition("-")[0]
    except ValueError:
        return cleaned  # a bare coin name we hold no snapshot of (the caller says so)


def snapshot_for(snapshots: Iterable[MarketSnapshot], asset: str) -> MarketSnapshot | None:
    """The snapshot that speaks for `asset`: in dollars if there is one, then the
    alphabetically first source and quote, so the answer never flips between calls."""
    found = [s for s in snapshots if s.asset == asset.upper()]
    found.sort(key=lambda s: (s.vs_currency != PREFERRED_VS, s.source, s.vs_currency))
    return found[0] if found else None
