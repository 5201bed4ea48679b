"""Market snapshots (CoinGecko) in the warm stores, DuckDB and PostgreSQL alike: stored
insert-or-ignore by (source, asset, vs_currency, ts_source), unknown figures kept as NULL,
the latest per series picked by the largest ts_source, ranges read back in order; the memory
sink and the hot tier keep the same semantics."""

from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg
import pytest

from marketpipe.model.batch import CommitBatch
from marketpipe.model.records import MarketSnapshot
from marketpipe.storage.duckdb_schema import TABLES
from marketpipe.storage.duckdb_warm import DuckDBWarehouse
from marketpipe.storage.hot_memory import MemoryHotTier
from marketpipe.storage.memory_sink import MemorySink
from marketpipe.storage.postgres_warm import PostgresWarehouse

T0 = 1_723_161_600_000_000  # 2024-08-09 00:00 UTC
MINUTE = 60_000_000

Store = DuckDBWarehouse | PostgresWarehouse | MemorySink


def snap(
    asset: str = "BTC", ts: int = T0, price: float = 60_000.5, *, vs: str = "usd",
    source: str = "coingecko", recv: int | None = None, market_cap: float | None = 1.2e12,
    rank: int | None = 1,
) -> MarketSnapshot:  # fmt: skip
    return MarketSnapshot(
        source, asset, vs, price, market_cap, 1.26e12, 3.1e10, 19_700_000.0, rank, ts,
        recv if recv is not None else ts + 1_500_000,
    )  # fmt: skip


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.integration),
                        "memory"])  # fmt: skip
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "duckdb":
        duck = DuckDBWarehouse(tmp_path / "warm.duckdb")
        yield duck
        duck.close()
    elif request.param == "postgres":
        pg = PostgresWarehouse(request.getfixturevalue("postgres_dsn"))
        pg.migrate()
        yield pg
        pg.close()
    else:
        yield MemorySink()


def every(store: Store) -> list[MarketSnapshot]:
    return store.market_snapshots(None, None, None)


def test_the_same_snapshot_twice_is_one_row_and_the_first_value_stays(store: Store) -> None:
    first = snap(recv=T0 + 1)
    store.commit(CommitBatch(snapshots=[first]))
    # Re-polled (a later receipt, even a different price): the stored one stays.
    store.commit(CommitBatch(snapshots=[snap(recv=T0 + 9, price=1.0)]))
    # Twice in one batch: one row as well (one statement may not touch a key twice).
    store.commit(CommitBatch(snapshots=[snap(ts=T0 + MINUTE), snap(ts=T0 + MINUTE, price=2.0)]))
    assert every(store) == [first, snap(ts=T0 + MINUTE)]


def test_two_source_times_are_two_rows_in_time_order(store: Store) -> None:
    later, earlier = snap(ts=T0 + MINUTE, price=61_000.0), snap(ts=T0)
    store.commit(CommitBatch(snapshots=[later, earlier]))
    assert every(store) == [earlier, later]


def test_unknown_figures_stay_null_never_zero(store: Store) -> None:
    unknown = MarketSnapshot("coingecko", "NEW", "usd", 0.25, None, None, None, None, None,
                             T0, T0 + 5)  # fmt: skip
    store.commit(CommitBatch(snapshots=[unknown]))
    assert every(store) == [unknown]
    if isinstance(store, DuckDBWarehouse):
        nulls = store._rows("SELECT count(*) FROM market_snapshots WHERE market_cap IS NULL "
                            "AND market_cap_rank IS NULL", [])  # fmt: skip
        assert nulls == [(1,)]


def test_latest_per_series_is_the_largest_source_time(store: Store) -> None:
    btc = [snap(ts=T0 + i * MINUTE, price=60_000.0 + i) for i in (2, 0, 3, 1)]
    eth_eur = snap("ETH", T0 + 5 * MINUTE, 2_900.0, vs="eur")
    eth_usd = snap("ETH", T0 + MINUTE, 3_100.0)
    store.commit(CommitBatch(snapshots=[*btc, eth_usd]))
    store.commit(CommitBatch(snapshots=[eth_eur, snap(ts=T0 - MINUTE)]))  # an older one late
    latest = store.latest_market_snapshots()
    # Independent: the max of ts_source per (source, asset, vs_currency), ordered by that key.
    expected = {}
    for s in [*btc, eth_usd, eth_eur]:
        key = (s.source, s.asset, s.vs_currency)
        if key not in expected or s.ts_source > expected[key].ts_source:
            expected[key] = s
    assert latest == [expected[k] for k in sorted(expected)]
    assert [s.price for s in latest] == [60_003.0, 2_900.0, 3_100.0]


def test_latest_with_equal_source_times_is_the_first_stored(store: Store) -> None:
    # Tie on ts_source: the key is the same, so insert-or-ignore keeps the first receipt.
    store.commit(CommitBatch(snapshots=[snap(ts=T0 + MINUTE, price=1.0, recv=T0 + 70_000_000)]))
    store.commit(CommitBatch(snapshots=[snap(ts=T0 + MINUTE, price=2.0, recv=T0 + 80_000_000)]))
    assert [(s.price, s.ts_recv) for s in store.latest_market_snapshots()] == [
        (1.0, T0 + 70_000_000)
    ]


def test_ranges_are_half_open_and_filter_by_asset(store: Store) -> None:
    snaps = [snap(a, T0 + i * MINUTE) for i in range(4) for a in ("BTC", "ETH")]
    store.commit(CommitBatch(snapshots=snaps))
    got = store.market_snapshots("ETH", T0 + MINUTE, T0 + 3 * MINUTE)
    assert [(s.asset, s.ts_source) for s in got] == [("ETH", T0 + MINUTE), ("ETH", T0 + 2 * MINUTE)]
    assert len(store.market_snapshots(None, T0 + 3 * MINUTE, None)) == 2  # start included
    assert store.market_snapshots("ETH", None, T0) == []  # end excluded
    assert store.market_snapshots("DOGE", None, None) == []


def test_a_failing_batch_rolls_back_its_snapshots_too(tmp_path: Path) -> None:
    warm = DuckDBWarehouse(tmp_path / "warm.duckdb")
    warm.commit(CommitBatch(snapshots=[snap()]), seq=5)
    with pytest.raises(Exception, match="not after"):
        warm.commit(CommitBatch(snapshots=[snap(ts=T0 + MINUTE)]), seq=5)
    assert every(warm) == [snap()]
    warm.close()


@pytest.mark.integration
def test_postgres_table_has_the_duckdb_columns_and_timestamptz(postgres_dsn: str) -> None:
    warm = PostgresWarehouse(postgres_dsn)
    warm.migrate()
    duck = duckdb.connect()
    duck.execute(TABLES["market_snapshots"])
    duck_columns = [(r[0], r[1]) for r in duck.execute("DESCRIBE market_snapshots").fetchall()]
    with psycopg.connect(postgres_dsn) as con:
        pg_columns = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'market_snapshots' ORDER BY ordinal_position"
        ).fetchall()
        key = con.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'market_snapshots'::regclass "
            "AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)"
        ).fetchall()
    names = list(MarketSnapshot.__struct_fields__)
    assert [c for c, _ in pg_columns] == [c for c, _ in duck_columns] == names
    types = dict(pg_columns)
    assert types["ts_source"] == types["ts_recv"] == "timestamp with time zone"
    assert dict(duck_columns)["ts_source"] == "TIMESTAMP WITH TIME ZONE"
    assert [k for (k,) in key] == ["source", "asset", "vs_currency", "ts_source"]
    warm.close()


@pytest.mark.integration
def test_exact_microseconds_and_floats_survive_postgres(postgres_dsn: str) -> None:
    warm = PostgresWarehouse(postgres_dsn)
    warm.migrate()
    odd = snap(ts=T0 + 123_457, price=0.1 + 0.2, market_cap=1e-7 * 3, recv=T0 + 999_999)
    warm.commit(CommitBatch(snapshots=[odd]))
    assert every(warm) == [odd]
    warm.close()


def test_hot_tier_keeps_the_newest_per_series() -> None:
    hot = MemoryHotTier()
    hot.apply(CommitBatch(snapshots=[snap(ts=T0 + MINUTE), snap("ETH", T0)]))
    hot.apply(CommitBatch(snapshots=[snap(ts=T0, price=1.0), snap(ts=T0 + MINUTE, price=2.0)]))
    assert hot.latest_market_snapshots() == [snap(ts=T0 + MINUTE), snap("ETH", T0)]


def test_the_embedded_backend_serves_the_latest_before_and_after_materialization(
    tmp_path: Path,
) -> None:
    from marketpipe.serving.backend import embedded_backend
    from marketpipe.storage.embedded import EmbeddedStore

    store = EmbeddedStore(tmp_path, commit_log=True, durability="never")
    backend = embedded_backend(store, status=lambda: {})
    assert backend.market is not None and backend.market() == []
    store.commit(CommitBatch(snapshots=[snap(ts=T0), snap("ETH", T0 + MINUTE)]))
    store.commit(CommitBatch(snapshots=[snap(ts=T0 + 2 * MINUTE, price=1.0)]))
    want = [snap(ts=T0 + 2 * MINUTE, price=1.0), snap("ETH", T0 + MINUTE)]
    assert backend.market() == want  # from the hot tier at once
    store.sync()
    assert store.warm.latest_market_snapshots() == want
    store.close()
    reopened = EmbeddedStore(tmp_path)  # a new process: the warm store alone answers
    assert embedded_backend(reopened, status=lambda: {}).market() == want  # type: ignore[misc]
    reopened.close()
