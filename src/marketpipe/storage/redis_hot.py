"""The cluster hot tier: the last hour in Redis, shared by every API instance.

Keys (all under a prefix, `marketpipe` by default):

- `{p}:quotes` — hash `exchange|symbol` → latest quote (JSON);
- `{p}:candles:{exchange}:{symbol}:{interval}` — sorted set scored by open time, one member per
  window (its latest value), trimmed to the last hour (at least 3 windows) and N members;
- `{p}:alerts` — a capped stream (XADD MAXLEN) of alerts, each added once per alert_id;
- channels `{p}:live:{candles|trades|alerts|quotes}` — one message per committed batch and kind,
  so API instances push live updates to their WebSocket clients (`RedisLiveFeed`).

A batch is applied in one MULTI/EXEC, after it committed to the warm store. If applying fails
(Redis down), the series that batch touched are dropped on the next successful apply: the hot
tier then claims coverage only from the next candle on, and the router reads the older part
from PostgreSQL instead of serving a hole.
"""

import logging
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Literal, cast

import msgspec
import redis
import redis.asyncio

from marketpipe.model.batch import CommitBatch
from marketpipe.model.errors import StorageError
from marketpipe.model.intervals import INTERVAL_US
from marketpipe.model.records import Alert, Candle, Quote, Trade
from marketpipe.model.schemas import TRADE_SCHEMA, from_table, to_table
from marketpipe.storage.tiers import Series, TimeRange, matching_alerts, window

log = logging.getLogger(__name__)

LiveKind = Literal["candles", "trades", "alerts", "quotes"]
LIVE_KINDS: tuple[LiveKind, ...] = ("candles", "trades", "alerts", "quotes")
SCHEMA_VERSION = 1

# Add an alert to the capped stream unless its id was added before (replays add nothing).
_ADD_ALERT_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then
  redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], '*', 'alert', ARGV[2])
  return 1
end
return 0
"""


class LiveMessage(msgspec.Struct, frozen=True):
    """What a live channel carries: one committed batch's records of one kind."""

    v: int
    candles: list[Candle] = []
    trades: list[Trade] = []
    alerts: list[Alert] = []
    quotes: list[Quote] = []


class RedisHotTier:
    """Also the router's hot `Tier`: candles of the last hour. Alerts here are a bounded feed
    and quotes are not ranged, so it claims no coverage for them (the warm tier answers)."""

    name = "hot"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "marketpipe",
        retention_us: int = 3_600_000_000,
        candles_per_series: int = 1000,
        max_alerts: int = 1000,
        publish_trades: bool = True,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.retention_us = retention_us
        self.candles_per_series = candles_per_series
        self.max_alerts = max_alerts
        self.publish_trades = publish_trades
        self._client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self._add_alert = self._client.register_script(_ADD_ALERT_ONCE)
        self._dirty: set[str] = set()  # series whose last update failed
        self._lock = threading.Lock()

    def close(self) -> None:
        self._client.close()

    # ---- keys ----------------------------------------------------------------------------

    def _series_key(self, exchange: str, symbol: str, interval: str) -> str:
        return f"{self.prefix}:candles:{exchange}:{symbol}:{interval}"

    @property
    def _quotes_key(self) -> str:
        return f"{self.prefix}:quotes"

    @property
    def _alerts_key(self) -> str:
        return f"{self.prefix}:alerts"

    def channel(self, kind: LiveKind) -> str:
        return f"{self.prefix}:live:{kind}"

    # ---- writes --------------------------------------------------------------------------

    def apply(self, batch: CommitBatch) -> None:
        """Apply a committed batch and publish it, atomically (MULTI/EXEC)."""
        series = {self._series_key(c.exchange, c.symbol, c.interval) for c in batch.candles}
        with self._lock:
            dirty = set(self._dirty)
        try:
            pipe = self._client.pipeline(transaction=True)
            if dirty:
                pipe.delete(*dirty)
            self._queue_quotes(pipe, batch.quotes)
            self._queue_candles(pipe, batch.candles)
            for alert in batch.alerts:
                self._add_alert(
                    keys=[self._alerts_key, f"{self.prefix}:alert-seen:{alert.alert_id}"],
                    args=[self.max_alerts, msgspec.json.encode(alert), self._seen_ttl_s],
                    client=pipe,
                )
            self._queue_publish(pipe, batch)
            pipe.execute()
        except redis.RedisError as exc:
            with self._lock:
                self._dirty |= series
            raise StorageError(f"hot tier (Redis at {self._where}) update failed: {exc}") from exc
        with self._lock:
            self._dirty -= dirty

    @property
    def _seen_ttl_s(self) -> int:
        # Remember alert ids well past the hour an alert stays hot.
        return max(1, self.retention_us // 1_000_000) * 24

    @property
    def _where(self) -> str:
        kwargs = self._client.connection_pool.connection_kwargs
        return f"{kwargs.get('host')}:{kwargs.get('port')}"

    def _queue_quotes(self, pipe: "redis.client.Pipeline", quotes: list[Quote]) -> None:
        latest = {f"{q.exchange}|{q.symbol}": msgspec.json.encode(q) for q in quotes}
        if latest:
            pipe.hset(self._quotes_key, mapping=latest)  # type: ignore[arg-type]

    def _queue_candles(self, pipe: "redis.client.Pipeline", candles: list[Candle]) -> None:
        newest: dict[str, Candle] = {}
        for candle in candles:
            key = self._series_key(candle.exchange, candle.symbol, candle.interval)
            # One member per window: drop the previous value of this window, add the new one.
            pipe.zremrangebyscore(key, candle.open_time, candle.open_time)
            pipe.zadd(key, {msgspec.json.encode(candle): candle.open_time})
            if key not in newest or candle.open_time > newest[key].open_time:
                newest[key] = candle
        for key, candle in newest.items():
            # Keep the last hour (but always 3 windows of long intervals) and at most N.
            horizon = candle.open_time - max(self.retention_us, 3 * INTERVAL_US[candle.interval])
            pipe.zremrangebyscore(key, "-inf", f"({horizon}")
            pipe.zremrangebyrank(key, 0, -(self.candles_per_series + 1))

    def _queue_publish(self, pipe: "redis.client.Pipeline", batch: CommitBatch) -> None:
        if batch.candles:
            message = LiveMessage(SCHEMA_VERSION, candles=batch.candles)
            pipe.publish(self.channel("candles"), msgspec.json.encode(message))
        if batch.alerts:
            message = LiveMessage(SCHEMA_VERSION, alerts=batch.alerts)
            pipe.publish(self.channel("alerts"), msgspec.json.encode(message))
        if batch.quotes:
            message = LiveMessage(SCHEMA_VERSION, quotes=batch.quotes)
            pipe.publish(self.channel("quotes"), msgspec.json.encode(message))
        if self.publish_trades and batch.trades.num_rows:
            message = LiveMessage(SCHEMA_VERSION, trades=from_table(batch.trades, Trade))
            pipe.publish(self.channel("trades"), msgspec.json.encode(message))

    def apply_retention(self, now_us: int) -> dict[str, int]:
        """Drop what is older than the hot horizon (lifecycle): candles of windows that
        opened before `now - retention` (keeping 3 windows of long intervals), alerts and
        quotes older than that."""
        removed = {"candles": 0, "alerts": 0, "quotes": 0}
        horizon = now_us - self.retention_us
        try:
            for key in self._client.scan_iter(match=f"{self.prefix}:candles:*", count=500):
                interval = key.decode().rsplit(":", 1)[-1]
                keep_from = now_us - max(self.retention_us, 3 * INTERVAL_US.get(interval, 0))
                removed["candles"] += int(
                    self._client.zremrangebyscore(key, "-inf", f"({keep_from}")
                )
            old_alerts = [
                entry_id for entry_id, alert in self._stream_alerts() if alert.ts < horizon
            ]
            if old_alerts:
                removed["alerts"] = int(self._client.xdel(self._alerts_key, *old_alerts))
            stale = [q for q in self.quotes() if q.ts_event < horizon]
            if stale:
                removed["quotes"] = int(
                    self._client.hdel(
                        self._quotes_key, *(f"{q.exchange}|{q.symbol}" for q in stale)
                    )
                )
        except redis.RedisError as exc:
            raise StorageError(f"hot tier retention failed: {exc}") from exc
        return removed

    # ---- reads ---------------------------------------------------------------------------

    def quotes(self) -> list[Quote]:
        try:
            values = self._client.hvals(self._quotes_key)
        except redis.RedisError as exc:
            raise StorageError(f"hot tier read failed: {exc}") from exc
        quotes = [msgspec.json.decode(v, type=Quote) for v in values]
        return sorted(quotes, key=lambda q: (q.exchange, q.symbol))

    # ---- the Tier protocol -----------------------------------------------------------------

    def coverage(self, series: Series) -> TimeRange | None:
        """From the open time of the oldest candle held to the close time of the newest."""
        if series.kind != "candles" or series.symbol is None:
            return None
        key = self._series_key(series.exchange, series.symbol, series.interval)
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.zrange(key, 0, 0)
            pipe.zrange(key, -1, -1)
            oldest, newest = cast(list[list[bytes]], pipe.execute())
        except redis.RedisError as exc:
            raise StorageError(f"hot tier read failed: {exc}") from exc
        if not oldest or not newest:
            return None
        first = msgspec.json.decode(oldest[0], type=Candle)
        last = msgspec.json.decode(newest[0], type=Candle)
        return TimeRange(first.open_time, last.close_time)

    def candles(
        self, exchange: str, symbol: str, interval: str,
        start: int | None = None, end: int | None = None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> list[Candle]:  # fmt: skip
        """The series' candles with open time in `[start, end)`, oldest first."""
        low = "-inf" if start is None else str(start)
        high = "+inf" if end is None else f"({end}"
        try:
            values = cast(
                list[bytes],
                self._client.zrangebyscore(self._series_key(exchange, symbol, interval), low, high),
            )
        except redis.RedisError as exc:
            raise StorageError(f"hot tier read failed: {exc}") from exc
        series = [msgspec.json.decode(v, type=Candle) for v in values]
        return window(series, lambda c: c.open_time, None, None, limit, newest_first)

    def trades(
        self, exchange: str, symbol: str, start: int | None, end: int | None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> list[Trade]:  # fmt: skip
        return []

    def alerts(
        self, exchange: str | None = None, symbol: str | None = None,
        start: int | None = None, end: int | None = None,
        *, kind: str | None = None, limit: int | None = None, newest_first: bool = False,
    ) -> list[Alert]:  # fmt: skip
        """The recent alerts feed (all of it by default), ordered by (ts, alert_id)."""
        try:
            feed = [alert for _, alert in self._stream_alerts()]
        except redis.RedisError as exc:
            raise StorageError(f"hot tier read failed: {exc}") from exc
        found = matching_alerts(feed, exchange, symbol, kind)
        return window(found, lambda a: a.ts, start, end, limit, newest_first)

    def _stream_alerts(self) -> list[tuple[bytes, Alert]]:
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]], self._client.xrange(self._alerts_key)
        )
        return [
            (entry_id, msgspec.json.decode(fields[b"alert"], type=Alert))
            for entry_id, fields in entries
        ]


def _to_batch(message: LiveMessage) -> CommitBatch:
    trades = to_table(message.trades, TRADE_SCHEMA) if message.trades else None
    batch = CommitBatch(candles=message.candles, alerts=message.alerts, quotes=message.quotes)
    if trades is not None:
        batch.trades = trades
    return batch


class RedisLiveFeed:
    """Subscriber side of the live channels: yields each published message as a CommitBatch
    holding that message's records (hand it to the API's CommitBroadcaster)."""

    def __init__(
        self, url: str, *, prefix: str = "marketpipe", kinds: Iterable[LiveKind] = LIVE_KINDS
    ) -> None:
        self.url = url
        self.channels = [f"{prefix}:live:{kind}" for kind in kinds]

    @staticmethod
    def decode(data: bytes) -> CommitBatch | None:
        try:
            message = msgspec.json.decode(data, type=LiveMessage)
        except msgspec.ValidationError:
            log.warning("undecodable live message dropped", extra={"bytes": len(data)})
            return None
        if message.v != SCHEMA_VERSION:
            log.warning("live message of unknown version dropped", extra={"v": message.v})
            return None
        return _to_batch(message)

    def listen(self, stop: threading.Event, poll_s: float = 0.2) -> Iterator[CommitBatch]:
        """Blocking: yield batches until `stop` is set (run it in a thread). Reconnects when
        Redis goes away; what was published meanwhile is lost (pub/sub keeps nothing), which
        live pushes tolerate: REST reads come from the stores."""
        while not stop.is_set():
            client = redis.Redis.from_url(self.url, socket_connect_timeout=5)
            pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(*self.channels)
                while not stop.is_set():
                    item = pubsub.get_message(timeout=poll_s)
                    if item is not None and item["type"] == "message":
                        batch = self.decode(item["data"])
                        if batch is not None:
                            yield batch
            except redis.ConnectionError as exc:
                log.warning("live feed lost Redis; reconnecting", extra={"error": str(exc)})
                stop.wait(1.0)
            finally:
                pubsub.close()
                client.close()

    async def batches(self) -> AsyncIterator[CommitBatch]:
        """Async: yield batches as they are published (cancel the task to stop)."""
        client = redis.asyncio.Redis.from_url(self.url, socket_connect_timeout=5)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(*self.channels)
            async for item in pubsub.listen():
                if item["type"] == "message":
                    batch = self.decode(item["data"])
                    if batch is not None:
                        yield batch
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            await client.aclose()
