"""What the API serves from, injected into `create_app`: a tier router plus a few live views.

Embedded mode builds one over its data dir (`embedded_backend`); cluster mode builds another
over Redis, PostgreSQL and S3 tiers without touching any route.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marketpipe.bus.broadcast import CommitBroadcaster
from marketpipe.model.records import MarketSnapshot, Position, Quote
from marketpipe.storage.embedded import EmbeddedStore
from marketpipe.storage.embedded_tiers import WarmDuckDBTier, embedded_router
from marketpipe.storage.market_keys import keep_latest, series_key
from marketpipe.storage.router import TierRouter

StatusProvider = Callable[[], dict[str, Any]]


@dataclass(slots=True)
class Backend:
    router: TierRouter
    # Latest best bid/ask per (exchange, symbol).
    quotes: Callable[[], list[Quote]]
    # Per (exchange, symbol): last trade id, completeness, gaps — also the symbol directory.
    positions: Callable[[], list[Position]]
    # Per-component health for /api/v1/system/health.
    status: StatusProvider
    # Committed batches for live pushes; None serves REST only (e.g. `serve` over a data dir).
    broadcaster: CommitBroadcaster | None = None
    # Dead letters stored so far (for the health strip), if the backend knows.
    dead_letters: Callable[[], int] | None = None
    # A number that changes whenever the served data may have changed (e.g. the committed
    # batch sequence); lets the API reuse a response until then. None disables reuse.
    version: Callable[[], int] | None = None
    # Latest market snapshot per (source, asset, vs_currency), e.g. CoinGecko market caps;
    # None when the backend stores no market data.
    market: Callable[[], list[MarketSnapshot]] | None = None


def embedded_backend(
    store: EmbeddedStore, status: StatusProvider, broadcaster: CommitBroadcaster | None = None
) -> Backend:
    router = embedded_router(store)
    warm = router.tiers[1]
    assert isinstance(warm, WarmDuckDBTier)

    def quotes() -> list[Quote]:
        # Through the warm tier's own cursor: never waits on the pipeline's commit lock.
        latest = {(q.exchange, q.symbol): q for q in warm.quotes()}
        latest.update({(q.exchange, q.symbol): q for q in store.hot.quotes()})
        return list(latest.values())

    def market() -> list[MarketSnapshot]:
        # The warm store's newest per key, overlaid by the hot tier's (ahead of the warm
        # store while the commit log is materialized); the larger ts_source wins.
        latest = {series_key(s): s for s in warm.latest_market_snapshots()}
        keep_latest(latest, store.hot.latest_market_snapshots())
        return [latest[k] for k in sorted(latest)]

    return Backend(
        router=router,
        quotes=quotes,
        market=market,
        positions=store.warm.positions,
        status=status,
        broadcaster=broadcaster,
        dead_letters=lambda: store.warm.counts().get("dead_letters", 0),
        # Every commit advances the store's batch sequence (also when the warm store is
        # materialized later from the commit log).
        version=lambda: store.version,
    )
