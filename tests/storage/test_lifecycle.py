"""Lifecycle in both modes on the recorded BTCUSDT files: final days' candles archived to the
lake (equal to the reference), warm retention (never losing an unexported trade), hot
retention, and compaction to one file per day with every trade exactly once."""

from pathlib import Path

import pyarrow.fs as pafs
import pytest

from harness.reference import raw_trades, reference_candles
from marketpipe.cli.lifecycle import run_lifecycle
from marketpipe.config import Settings, load_settings
from marketpipe.embedded.replay import replay
from marketpipe.model.batch import CommitBatch
from marketpipe.model.records import Candle, Trade
from marketpipe.model.schemas import TRADE_SCHEMA, from_table, to_table
from marketpipe.storage.duckdb_warm import DuckDBWarehouse
from marketpipe.storage.lake import CANDLES, MARKET, TRADES, ParquetLake
from marketpipe.storage.lifecycle_duckdb import DuckDBLifecycle
from marketpipe.storage.postgres_warm import PostgresWarehouse
from marketpipe.storage.redis_hot import RedisHotTier
from marketpipe.storage.s3 import s3_lake
from tests.conftest import BINANCE_08, BINANCE_09
from tests.embedded.test_replay import assert_matches_reference
from tests.servers.s3 import S3Endpoint

pytestmark = pytest.mark.integration

NOW = 1_723_291_200_000_000  # 2024-08-10 12:00 UTC: both recorded days are final
DAY = 86_400_000_000
ALL = {"exchange": None, "symbol": None, "start": None, "end": None, "limit": None}


def lake_files(lake: ParquetLake, dataset_name: str) -> list[str]:
    selector = pafs.FileSelector(f"{lake.root}/{dataset_name}", recursive=True)
    return sorted(
        i.path.removeprefix(f"{lake.root}/")
        for i in lake.filesystem.get_file_info(selector)
        if i.is_file
    )


def check_lake(lake: ParquetLake) -> None:
    """The lake alone answers for both days: every trade once, reference candles."""
    raw = raw_trades([BINANCE_08, BINANCE_09])
    ids = lake.read_trades().column("trade_id").to_pylist()
    assert sorted(ids) == sorted(r[1] for r in raw) and len(ids) == 19_904
    minutes = from_table(lake.read_candles(interval="1m"), Candle)
    assert_matches_reference(minutes, reference_candles(raw))
    fives = from_table(lake.read_candles(interval="5m"), Candle)
    assert_matches_reference(fives, reference_candles(raw, 5))
    # Compacted: one file per day and partition, each holding its trades exactly once.
    trade_files = lake_files(lake, "trades")
    assert [f.rsplit("/", 2)[1] for f in trade_files] == ["date=2024-08-08", "date=2024-08-09"]
    for path in trade_files:
        import pyarrow.parquet as pq

        table = pq.read_table(f"{lake.root}/{path}", filesystem=lake.filesystem)
        assert table.num_rows == len(set(table.column("trade_id").to_pylist()))


def test_embedded_lifecycle_archives_retains_and_compacts(settings: Settings) -> None:
    settings = settings.model_copy(
        update={
            "storage": settings.storage.model_copy(update={"lake_flush_trades": 3000}),
            "engine": settings.engine.model_copy(update={"batch_max_trades": 1000}),
            "lifecycle": settings.lifecycle.model_copy(update={"warm_retention_days": 1.0}),
        }
    )
    replay(settings, [BINANCE_08, BINANCE_09])
    lake = ParquetLake(settings.data_dir / "lake")
    assert len(lake_files(lake, "trades")) > 2  # several exports per day before compaction

    report = run_lifecycle(settings, NOW)

    assert report.archived_days == ["2024-08-08", "2024-08-09"]
    assert report.warm_removed["trades_recent"] == 19_904  # all exported, all past 1 day
    assert report.compaction["trades"].partitions == 2
    check_lake(lake)
    warm = DuckDBWarehouse(settings.data_dir / "warm.duckdb", read_only=True)
    assert warm.counts()["trades_recent"] == 0
    # Only candles whose window ends after the cutoff (2024-08-09 12:00) stay: the day's 1d.
    kept = [(i, c.open_time) for i in ("1m", "5m", "1h", "1d")
            for c in warm.candles(interval=i, **ALL)]  # fmt: skip
    assert kept == [("1d", NOW - DAY - 12 * 3_600_000_000)]
    warm.close()
    again = run_lifecycle(settings, NOW)  # nothing left to do, nothing changes
    assert again.archived_days == [] and again.compaction["trades"].partitions == 0
    check_lake(lake)


def test_embedded_retention_keeps_trades_not_yet_in_the_lake(tmp_path: Path) -> None:
    warm = DuckDBWarehouse(tmp_path / "warm.duckdb")
    old = [Trade("binance", "BTC-USDT", i, 1.0, 1.0, "buy", 1_000 + i, 1_000) for i in (1, 2)]
    warm.commit(CommitBatch(trades=to_table(old, TRADE_SCHEMA)))
    removed = DuckDBLifecycle(warm).apply_retention(NOW)
    assert removed["trades_recent"] == 0 and warm.counts()["trades_recent"] == 2
    warm.close()


def test_cluster_lifecycle_archives_to_s3_drops_partitions_and_trims_redis(
    recorded_batches: list[CommitBatch],
    postgres_dsn: str,
    redis_url: str,
    s3_bucket: S3Endpoint,
    tmp_path: Path,
) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        cluster={
            "postgres_dsn": postgres_dsn,
            "redis_url": redis_url,
            "s3_endpoint": s3_bucket.endpoint,
            "s3_bucket": s3_bucket.bucket,
            "s3_access_key": s3_bucket.access_key,
            "s3_secret_key": s3_bucket.secret_key,
        },
        lifecycle={"warm_retention_days": 0.5},  # cutoff 2024-08-10 00:00: both days go
    )
    warm = PostgresWarehouse(postgres_dsn)
    warm.migrate()
    hot = RedisHotTier(redis_url)
    lake = s3_lake(settings.cluster.s3_location())
    for batch in recorded_batches:  # what process (warm, hot) and archive (lake) write
        warm.commit(batch)
        hot.apply(batch)
        lake.write_trades(batch.trades)
    warm_candles = {i: warm.candles(interval=i, **ALL) for i in ("1m", "5m", "1h")}
    assert hot.candles("binance", "BTC-USDT", "1m")

    report = run_lifecycle(settings, NOW, backend="cluster")

    assert report.archived_days == ["2024-08-08", "2024-08-09"]
    for interval, stored in warm_candles.items():  # the lake got exactly the warm candles
        assert from_table(lake.read_candles(interval=interval), Candle) == stored
    assert report.warm_removed["trades_recent_partitions"] == 2
    assert warm.partitions() == [] and warm.counts()["candles"] == 0
    assert report.hot_removed["candles"] > 0
    assert hot.candles("binance", "BTC-USDT", "1m") == []
    check_lake(lake)
    again = run_lifecycle(settings, NOW, backend="cluster")
    assert again.archived_days == [] and again.compaction["trades"].partitions == 0
    check_lake(lake)
    assert {d.name for d in (TRADES, CANDLES, MARKET)} == set(report.compaction)
    hot.close()
    warm.close()
