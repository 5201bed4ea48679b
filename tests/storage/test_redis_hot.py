"""The Redis hot tier against a real server: latest quotes, the recent candles of each series
(revisions replace), a capped alert stream without duplicates, live pub/sub, retention, and
recovery from a Redis outage without serving holes."""

import asyncio
import threading
from pathlib import Path

import pytest

from marketpipe.model.batch import CommitBatch
from marketpipe.model.errors import StorageError
from marketpipe.model.records import Alert, Candle, Quote, Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.storage.duckdb_warm import DuckDBWarehouse
from marketpipe.storage.redis_hot import RedisHotTier, RedisLiveFeed
from tests.servers.scripts import ScriptServer, server_dir

pytestmark = pytest.mark.integration

T0 = 1_723_161_600_000_000
MINUTE = 60_000_000
HOUR = 3_600_000_000


def candle(open_time: int, close: float = 2.0, revision: int = 0, interval: str = "1m") -> Candle:
    width = {"1m": MINUTE, "1h": HOUR}[interval]
    return Candle(
        "binance", "BTC-USDT", interval, open_time, open_time + width, 1.0, 3.0, 0.5, close,
        2.0, 4.0, 2, 1.0, 2.0, 2.0, 1, 2, revision > 0, revision,
    )  # fmt: skip


def alert(alert_id: str, ts: int = T0) -> Alert:
    return Alert(alert_id, "whale_trade", "warning", "binance", "BTC-USDT", ts, 1e5, 1e5, "{}")


@pytest.fixture
def hot(redis_url: str) -> RedisHotTier:
    tier = RedisHotTier(redis_url, max_alerts=5, candles_per_series=100)
    yield tier  # type: ignore[misc]
    tier.close()


def test_the_recorded_replay_leaves_the_final_candles_of_the_last_hour(
    recorded_batches: list[CommitBatch], redis_url: str, tmp_path: Path
) -> None:
    hot = RedisHotTier(redis_url)
    duck = DuckDBWarehouse(tmp_path / "w.duckdb")
    for batch in recorded_batches:
        hot.apply(batch)
        duck.commit(batch)
    for interval in ("1m", "5m", "1h"):
        stored = duck.candles(
            exchange="binance", symbol="BTC-USDT", interval=interval, start=None, end=None,
            limit=None,
        )  # fmt: skip
        assert hot.candles("binance", "BTC-USDT", interval) == stored  # 12 minutes: all hot
    # The latest quote per symbol is the warm store's too; alerts are there once each.
    assert hot.quotes() == duck.quotes()
    warm_alerts = duck.alerts(exchange=None, symbol=None, start=None, end=None, limit=None)
    assert sorted(a.alert_id for a in hot.alerts()) == sorted(a.alert_id for a in warm_alerts)
    for batch in recorded_batches:  # a replay adds nothing
        hot.apply(batch)
    assert len(hot.alerts()) == len(warm_alerts) > 1
    hot.close()


def test_a_revision_replaces_its_window_and_old_windows_fall_out(hot: RedisHotTier) -> None:
    hot.apply(CommitBatch(candles=[candle(T0), candle(T0 + MINUTE)]))
    hot.apply(CommitBatch(candles=[candle(T0, close=2.5, revision=1)]))
    stored = hot.candles("binance", "BTC-USDT", "1m")
    assert [(c.open_time, c.close, c.revision) for c in stored] == [
        (T0, 2.5, 1),
        (T0 + MINUTE, 2.0, 0),
    ]
    # An hour and two minutes later, the first two windows are past the horizon; an hourly
    # series keeps its last 3 windows regardless.
    later = T0 + HOUR + 2 * MINUTE
    hot.apply(CommitBatch(candles=[candle(later), candle(T0, interval="1h")]))
    hot.apply(CommitBatch(candles=[candle(T0 + 3 * HOUR, interval="1h")]))
    assert [c.open_time for c in hot.candles("binance", "BTC-USDT", "1m")] == [later]
    assert len(hot.candles("binance", "BTC-USDT", "1h")) == 2
    assert [c.open_time for c in hot.candles("binance", "BTC-USDT", "1m", T0, later)] == []


def test_series_are_capped_at_n_candles(redis_url: str) -> None:
    tier = RedisHotTier(redis_url, candles_per_series=10)
    tier.apply(CommitBatch(candles=[candle(T0 + i * MINUTE) for i in range(30)]))
    kept = tier.candles("binance", "BTC-USDT", "1m")
    assert [c.open_time for c in kept] == [T0 + i * MINUTE for i in range(20, 30)]
    tier.close()


def test_alerts_stream_is_capped_and_deduplicated(hot: RedisHotTier) -> None:
    hot.apply(CommitBatch(alerts=[alert(f"a{i}") for i in range(8)]))
    hot.apply(CommitBatch(alerts=[alert("a7"), alert("a8")]))
    assert [a.alert_id for a in hot.alerts()] == ["a4", "a5", "a6", "a7", "a8"]


def test_quotes_keep_the_latest_per_symbol(hot: RedisHotTier) -> None:
    q = lambda s, bid, ts: Quote("binance", s, bid, 1.0, bid + 1, 1.0, ts, ts)  # noqa: E731
    hot.apply(CommitBatch(quotes=[q("BTC-USDT", 1.0, T0), q("BTC-USDT", 2.0, T0 + 1)]))
    hot.apply(CommitBatch(quotes=[q("ETH-USDT", 3.0, T0 + 2)]))
    assert [(x.symbol, x.bid) for x in hot.quotes()] == [("BTC-USDT", 2.0), ("ETH-USDT", 3.0)]


def test_retention_drops_what_is_older_than_an_hour(hot: RedisHotTier) -> None:
    old, new = T0, T0 + 2 * HOUR
    hot.apply(
        CommitBatch(
            candles=[candle(old)],
            alerts=[alert("old", old), alert("new", new)],
            quotes=[Quote("binance", "OLD-USDT", 1, 1, 2, 1, old, old)],
        )
    )
    hot.apply(CommitBatch(candles=[candle(old, interval="1h")]))
    removed = hot.apply_retention(now_us=new + MINUTE)
    assert removed == {"candles": 1, "alerts": 1, "quotes": 1}
    assert hot.candles("binance", "BTC-USDT", "1m") == []
    assert len(hot.candles("binance", "BTC-USDT", "1h")) == 1  # within 3 windows: kept
    assert [a.alert_id for a in hot.alerts()] == ["new"]
    assert hot.quotes() == []


def committed_batch() -> CommitBatch:
    trades = [
        Trade("binance", "BTC-USDT", i, 61000.5, 0.25, "sell", T0 + i, T0 + i) for i in (1, 2)
    ]
    return CommitBatch(
        trades=to_table(trades, TRADE_SCHEMA),
        candles=[candle(T0)],
        alerts=[alert("live")],
        quotes=[Quote("binance", "BTC-USDT", 1.0, 2.0, 3.0, 4.0, T0, T0)],
    )


def wait_for_subscriber(redis_url: str, channel: str) -> None:
    """Pub/sub keeps nothing for late joiners: publish only once someone listens."""
    import time

    import redis

    with redis.Redis.from_url(redis_url) as client:
        for _ in range(600):
            if client.pubsub_numsub(channel)[0][1] > 0:
                return
            time.sleep(0.05)
    raise AssertionError(f"nobody subscribed to {channel}")


def test_subscribers_receive_each_committed_batch(hot: RedisHotTier, redis_url: str) -> None:
    feed = RedisLiveFeed(redis_url, kinds=["candles", "trades", "alerts"])
    stop = threading.Event()
    received: list[CommitBatch] = []

    def run() -> None:
        for batch in feed.listen(stop, poll_s=0.05):
            received.append(batch)
            if len(received) == 3:
                stop.set()

    thread = threading.Thread(target=run)
    thread.start()
    wait_for_subscriber(redis_url, hot.channel("alerts"))
    sent = committed_batch()
    hot.apply(sent)
    thread.join(timeout=30)
    stop.set()
    assert not thread.is_alive()
    kinds = {k: b for b in received for k in ("candles", "trades", "alerts") if _has(b, k)}
    assert kinds["candles"].candles == sent.candles
    assert kinds["alerts"].alerts == sent.alerts
    assert kinds["trades"].trades.equals(sent.trades)
    assert all(not b.quotes for b in received)  # quotes were not subscribed


def _has(batch: CommitBatch, kind: str) -> bool:
    return bool(batch.trades.num_rows if kind == "trades" else getattr(batch, kind))


async def test_the_async_feed_yields_batches(hot: RedisHotTier, redis_url: str) -> None:
    feed = RedisLiveFeed(redis_url, kinds=["alerts"])

    async def first() -> CommitBatch:
        async for batch in feed.batches():
            return batch
        raise AssertionError("feed ended")

    task = asyncio.create_task(first())
    await asyncio.to_thread(wait_for_subscriber, redis_url, hot.channel("alerts"))
    await asyncio.to_thread(hot.apply, CommitBatch(alerts=[alert("x")]))
    batch = await asyncio.wait_for(task, 30)
    assert batch.alerts == [alert("x")]


def test_a_redis_outage_drops_the_touched_series_instead_of_leaving_a_hole() -> None:
    server = ScriptServer("redis", server_dir("redis-private"))
    server.start()
    tier = RedisHotTier(server.url)
    try:
        tier.apply(CommitBatch(candles=[candle(T0)]))
        server.stop()
        with pytest.raises(StorageError, match="Redis"):
            tier.apply(CommitBatch(candles=[candle(T0 + MINUTE)]))
        server.start()  # empty again (no persistence), but also true with persistence:
        tier.apply(CommitBatch(candles=[candle(T0 + 5 * MINUTE)]))
        # The series restarts at the first window applied after the outage: no gap inside.
        assert [c.open_time for c in tier.candles("binance", "BTC-USDT", "1m")] == [T0 + 5 * MINUTE]
    finally:
        tier.close()
        server.destroy()
