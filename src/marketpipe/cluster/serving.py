"""The API's backend in cluster mode: Redis, the warm store (PostgreSQL or BigQuery) and the
lake (S3 or GCS) behind the tier router, live pushes from Redis pub/sub. Any number of API
instances can serve from the same servers."""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from marketpipe.bus.broadcast import CommitBroadcaster
from marketpipe.cluster.stores import open_cluster_lake, open_hot_tier, open_warm_store
from marketpipe.config import Settings
from marketpipe.model.errors import MarketpipeError
from marketpipe.model.records import MarketSnapshot, Position, Quote
from marketpipe.serving.backend import Backend
from marketpipe.storage.cluster_tiers import SqlWarehouse, cluster_router
from marketpipe.storage.redis_hot import RedisHotTier, RedisLiveFeed

log = logging.getLogger(__name__)


class WarmStore(SqlWarehouse, Protocol):
    """What serving needs of a warm store beyond its reads."""

    def quotes(self) -> list[Quote]: ...
    def positions(self) -> list[Position]: ...
    def latest_market_snapshots(self) -> list[MarketSnapshot]: ...
    def counts(self) -> dict[str, int]: ...
    def last_commit_age_s(self) -> float | None: ...
    def migrate(self) -> None: ...
    def close(self) -> None: ...


@dataclass
class ClusterServing:
    """The backend plus what must be stopped on shutdown."""

    backend: Backend
    warm: WarmStore
    hot: RedisHotTier
    _stop: threading.Event = field(default_factory=threading.Event)
    _feed: threading.Thread | None = None

    def start_live_feed(self, feed: RedisLiveFeed) -> None:
        """Relay Redis pub/sub into the API's broadcaster (WebSocket pushes), on a thread."""
        broadcaster = self.backend.broadcaster
        assert broadcaster is not None

        def relay() -> None:
            for batch in feed.listen(self._stop):
                broadcaster.publish(batch)

        self._feed = threading.Thread(target=relay, name="redis-live-feed", daemon=True)
        self._feed.start()

    def close(self) -> None:
        self._stop.set()
        if self._feed is not None:
            self._feed.join(timeout=5)
        self.hot.close()
        self.warm.close()


def cluster_serving(settings: Settings, *, live: bool = True) -> ClusterServing:
    """Connect to the cluster's stores (fails fast with a StorageError naming the server)."""
    cluster = settings.cluster
    warm = open_warm_store(settings)
    try:
        warm.migrate()
        lake = open_cluster_lake(settings)
    except MarketpipeError:
        warm.close()
        raise
    hot = open_hot_tier(settings)

    def quotes() -> list[Quote]:
        latest = {(q.exchange, q.symbol): q for q in warm.quotes()}
        latest.update({(q.exchange, q.symbol): q for q in hot.quotes()})
        return list(latest.values())

    backend = Backend(
        router=cluster_router(hot, warm, lake),
        quotes=quotes,
        positions=warm.positions,
        status=_status(warm, hot, settings.cluster.warehouse),
        broadcaster=CommitBroadcaster() if live else None,
        dead_letters=lambda: warm.counts().get("dead_letters", 0),
        market=warm.latest_market_snapshots,
    )
    serving = ClusterServing(backend, warm, hot)
    if live:
        serving.start_live_feed(RedisLiveFeed(cluster.redis_url, prefix=cluster.redis_prefix))
    return serving


def _status(warm: WarmStore, hot: RedisHotTier, name: str) -> Callable[[], dict[str, Any]]:
    def status() -> dict[str, Any]:
        components: dict[str, Any] = {}
        age = None
        try:
            age = warm.last_commit_age_s()
            components[name] = {"status": "ok"}
        except MarketpipeError as exc:
            components[name] = {"status": "down", "error": str(exc)}
        try:
            hot.quotes()
            components["redis"] = {"status": "ok"}
        except MarketpipeError as exc:
            components["redis"] = {"status": "down", "error": str(exc)}
        healthy = all(c["status"] == "ok" for c in components.values())
        return {
            "status": "ok" if healthy else "degraded",
            "last_commit_age_s": age,
            "components": components,
        }

    return status
