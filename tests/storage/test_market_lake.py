"""Market snapshots in the lake: `market/source=…/asset=…/date=…` parts written atomically under
deterministic names (a rewrite is byte-for-byte the same file), readable with plain pyarrow;
the lifecycle archives each final day from either warm store, once, again only when the day
gained a snapshot, then retention drops the warm rows."""

from collections.abc import Iterator
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from marketpipe.model.batch import CommitBatch
from marketpipe.model.records import MarketSnapshot
from marketpipe.model.schemas import MARKET_SNAPSHOT_SCHEMA, from_table, to_table
from marketpipe.storage.duckdb_warm import DuckDBWarehouse
from marketpipe.storage.lake import ParquetLake
from marketpipe.storage.lifecycle import LifecycleWarm, run_cycle
from marketpipe.storage.lifecycle_duckdb import DuckDBLifecycle
from marketpipe.storage.lifecycle_settings import LifecycleSettings
from marketpipe.storage.postgres_warm import PostgresWarehouse

DAY = 86_400_000_000
HOUR = 3_600_000_000
T0 = 1_723_161_600_000_000  # 2024-08-09 00:00 UTC


def snap(asset: str, ts: int, vs: str = "usd", price: float = 10.0) -> MarketSnapshot:
    cap = None if asset == "NEW" else price * 1e6
    return MarketSnapshot("coingecko", asset, vs, price, cap, None, 1e5, 1e6, 3, ts, ts + 9)


def files(lake: ParquetLake) -> dict[str, bytes]:
    selector = pafs.FileSelector(f"{lake.root}/market", recursive=True, allow_not_found=True)
    return {
        i.path.removeprefix(f"{lake.root}/"): Path(i.path).read_bytes()
        for i in lake.filesystem.get_file_info(selector)
        if i.is_file
    }


def test_parts_are_partitioned_by_source_asset_and_day_and_named_by_times(
    tmp_path: Path,
) -> None:
    lake = ParquetLake(tmp_path / "lake")
    rows = [snap("BTC", T0 + HOUR, "usd"), snap("BTC", T0 + HOUR, "eur"), snap("BTC", T0),
            snap("ETH", T0 + DAY + 5), snap("NEW", T0 + 7)]  # fmt: skip
    assert lake.write_market(to_table(rows, MARKET_SNAPSHOT_SCHEMA)) == 3
    eth = T0 + DAY + 5
    assert sorted(files(lake)) == [
        f"market/source=coingecko/asset=BTC/date=2024-08-09/part-{T0}-{T0 + HOUR}.parquet",
        f"market/source=coingecko/asset=ETH/date=2024-08-10/part-{eth}-{eth}.parquet",
        f"market/source=coingecko/asset=NEW/date=2024-08-09/part-{T0 + 7}-{T0 + 7}.parquet",
    ]  # fmt: skip
    # Plain pyarrow reads them with hive partitions; the columns are the record's.
    btc_part = next(p for p in files(lake) if "asset=BTC" in p)
    btc = pq.read_table(f"{lake.root}/{btc_part}")
    assert btc.schema.equals(MARKET_SNAPSHOT_SCHEMA)
    assert from_table(btc, MarketSnapshot) == [rows[2], rows[1], rows[0]]  # time, then currency
    whole = ds.dataset(f"{lake.root}/market", format="parquet", partitioning="hive").to_table()
    assert whole.num_rows == 5
    new = from_table(lake.read_market(asset="NEW"), MarketSnapshot)
    assert new == [rows[4]] and new[0].market_cap is None  # null stays null


def test_writing_the_same_snapshots_again_gives_the_same_files(tmp_path: Path) -> None:
    lake = ParquetLake(tmp_path / "lake")
    rows = to_table([snap(a, T0 + i * HOUR, vs) for i in range(3) for a in ("BTC", "ETH")
                     for vs in ("usd", "eur")], MARKET_SNAPSHOT_SCHEMA)  # fmt: skip
    lake.write_market(rows)
    before = files(lake)
    lake.write_market(rows.take(list(reversed(range(rows.num_rows)))))  # other order
    assert files(lake) == before  # same names, same bytes
    assert not [p for p in Path(tmp_path / "lake").rglob(".tmp-*")]  # nothing half-written
    assert lake.read_market().num_rows == rows.num_rows == 12


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.integration)])
def warm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[object, LifecycleWarm]]:
    if request.param == "duckdb":
        duck = DuckDBWarehouse(tmp_path / "warm.duckdb")
        yield duck, DuckDBLifecycle(duck)
        duck.close()
    else:
        pg = PostgresWarehouse(request.getfixturevalue("postgres_dsn"))
        pg.migrate()
        yield pg, pg
        pg.close()


def test_lifecycle_archives_final_days_once_and_again_when_one_grew(
    warm: tuple[DuckDBWarehouse | PostgresWarehouse, LifecycleWarm], tmp_path: Path
) -> None:
    store, lifecycle = warm
    day1 = [snap(a, T0 + i * HOUR) for i in range(3) for a in ("BTC", "ETH")]
    day2 = [snap("BTC", T0 + DAY + HOUR)]
    store.commit(CommitBatch(snapshots=[*day1, *day2]))
    lake = ParquetLake(tmp_path / "lake")
    settings = LifecycleSettings(compact=False, warm_retention_days=30)
    now = T0 + 2 * DAY - 1  # day 2 ends at now + 1: not final yet
    report = run_cycle(lifecycle, lake, None, now_us=now, settings=settings, final_after_us=0)
    assert report.archived_market_days == ["2024-08-09"] and report.archived_snapshots == 6
    assert from_table(lake.read_market(), MarketSnapshot) == day1
    again = run_cycle(lifecycle, lake, None, now_us=now, settings=settings, final_after_us=0)
    assert again.archived_market_days == []
    # A snapshot of day 1 polled late: day 1 is written again, and read back once each.
    late = snap("ETH", T0 + 20 * HOUR, price=11.0)
    store.commit(CommitBatch(snapshots=[late, day1[0]]))
    later = T0 + 2 * DAY
    report = run_cycle(lifecycle, lake, None, now_us=later, settings=settings, final_after_us=0)
    assert report.archived_market_days == ["2024-08-09", "2024-08-10"]
    assert report.archived_snapshots == 8
    want = sorted([*day1, late, *day2], key=lambda s: (s.ts_source, s.asset))
    assert from_table(lake.read_market(), MarketSnapshot) == want


def test_retention_drops_old_snapshots_and_compaction_leaves_one_file_per_day(
    warm: tuple[DuckDBWarehouse | PostgresWarehouse, LifecycleWarm], tmp_path: Path
) -> None:
    store, lifecycle = warm
    old = [snap("BTC", T0 + i * HOUR) for i in range(3)]
    recent = snap("BTC", T0 + 10 * DAY)
    lake = ParquetLake(tmp_path / "lake")
    store.commit(CommitBatch(snapshots=old))
    lake.write_market(to_table(old[:2], MARKET_SNAPSHOT_SCHEMA))  # an earlier, partial write
    store.commit(CommitBatch(snapshots=[recent]))
    settings = LifecycleSettings(warm_retention_days=5)
    now = T0 + 10 * DAY + HOUR
    report = run_cycle(lifecycle, lake, None, now_us=now, settings=settings, final_after_us=0)
    assert report.warm_removed["market_snapshots"] == 3
    assert store.market_snapshots(None, None, None) == [recent]
    assert report.compaction["market"].partitions == 1
    parts = [p for p in files(lake) if "date=2024-08-09" in p]
    assert len(parts) == 1 and from_table(lake.read_market(end=T0 + DAY), MarketSnapshot) == old
