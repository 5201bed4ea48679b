"""The tier router over Redis, PostgreSQL and the S3 lake answers any range exactly once,
equal to the reference candles, whichever tiers hold its parts."""

from collections.abc import Iterator

import pytest

from harness.reference import raw_trades, reference_candles
from marketpipe.model.batch import CommitBatch
from marketpipe.storage.cluster_tiers import cluster_router
from marketpipe.storage.postgres_warm import PostgresWarehouse
from marketpipe.storage.redis_hot import RedisHotTier
from marketpipe.storage.router import TierRouter
from marketpipe.storage.s3 import S3Location, s3_lake
from tests.conftest import BINANCE_08, BINANCE_09
from tests.embedded.test_replay import assert_matches_reference
from tests.servers.s3 import S3Endpoint

pytestmark = pytest.mark.integration

MIDNIGHT = 1_723_161_600_000_000  # 2024-08-09 00:00 UTC
MINUTE = 60_000_000


@pytest.fixture
def stores(
    recorded_batches: list[CommitBatch], postgres_dsn: str, redis_url: str, s3_bucket: S3Endpoint
) -> Iterator[tuple[TierRouter, PostgresWarehouse]]:
    warm = PostgresWarehouse(postgres_dsn)
    warm.migrate()
    hot = RedisHotTier(redis_url, candles_per_series=5)  # the hot tier holds the last 5 only
    lake = s3_lake(
        S3Location(
            s3_bucket.bucket, "lake", s3_bucket.endpoint, s3_bucket.region,
            s3_bucket.access_key, s3_bucket.secret_key,
        )
    )  # fmt: skip
    for batch in recorded_batches:
        warm.commit(batch)
        hot.apply(batch)
        lake.write_trades(batch.trades)
    yield cluster_router(hot, warm, lake), warm
    hot.close()
    warm.close()


def test_ranges_spanning_hot_and_warm_match_the_reference(
    stores: tuple[TierRouter, PostgresWarehouse],
) -> None:
    router, _ = stores
    raw = raw_trades([BINANCE_08, BINANCE_09])
    routed = router.candles("binance", "BTC-USDT", "1m", None, None)
    assert routed.tiers == ("warm", "hot")
    assert_matches_reference(routed.records, reference_candles(raw))
    newest = router.candles("binance", "BTC-USDT", "1m", None, None, limit=7, newest_first=True)
    assert [c.open_time for c in newest.records] == [
        c.open_time for c in reversed(routed.records[-7:])
    ]
    assert len(router.trades("binance", "BTC-USDT", None, None).records) == 19_904


def test_after_warm_retention_the_lake_answers_the_older_part(
    stores: tuple[TierRouter, PostgresWarehouse],
) -> None:
    router, warm = stores
    warm.apply_retention(MIDNIGHT)  # 2024-08-08 leaves PostgreSQL (partition and candles)
    assert warm.partitions() == ["trades_recent_p20240809"]
    raw = raw_trades([BINANCE_08, BINANCE_09])
    routed = router.candles("binance", "BTC-USDT", "1m", None, None)
    assert routed.tiers == ("lake", "warm", "hot")
    assert_matches_reference(routed.records, reference_candles(raw))
    fives = router.candles("binance", "BTC-USDT", "5m", None, None)  # 3 windows: all hot
    assert_matches_reference(fives.records, reference_candles(raw, 5))
    window = router.candles(
        "binance", "BTC-USDT", "1m", MIDNIGHT - 3 * MINUTE, MIDNIGHT + 2 * MINUTE
    )
    assert [c.open_time for c in window.records] == [MIDNIGHT + i * MINUTE for i in range(-3, 2)]
    trades = router.trades("binance", "BTC-USDT", None, None)
    assert trades.tiers == ("lake", "warm")
    ids = [t.trade_id for t in trades.records]
    assert len(ids) == len(set(ids)) == 19_904
