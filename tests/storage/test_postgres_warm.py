"""The PostgreSQL warm store against a real server: the same results as the DuckDB store on the
recorded BTCUSDT files, exactly-once commits (offsets in the same transaction, fencing),
idempotent re-commits, migrations and partition retention."""

import threading
from pathlib import Path

import psycopg
import pytest

from harness.reference import raw_trades, reference_candles
from marketpipe.model.batch import CommitBatch
from marketpipe.model.errors import StorageError
from marketpipe.model.intervals import INTERVAL_US
from marketpipe.model.records import Alert, Candle, Position, Quote, Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.storage.duckdb_schema import TABLES
from marketpipe.storage.duckdb_warm import DuckDBWarehouse
from marketpipe.storage.postgres_warm import PostgresWarehouse
from tests.conftest import BINANCE_08, BINANCE_09
from tests.embedded.test_replay import assert_matches_reference
from tests.servers.scripts import ScriptServer

pytestmark = pytest.mark.integration

DAY = 86_400_000_000
T0 = 1_723_161_600_000_000  # 2024-08-09 00:00 UTC
ALL = {"exchange": None, "symbol": None, "start": None, "end": None, "limit": None}


@pytest.fixture
def warm(postgres_dsn: str) -> PostgresWarehouse:
    store = PostgresWarehouse(postgres_dsn)
    store.migrate()
    yield store  # type: ignore[misc]
    store.close()


def everything(store: PostgresWarehouse | DuckDBWarehouse) -> dict[str, object]:
    candles = {i: store.candles(interval=i, **ALL) for i in INTERVAL_US}
    return {
        "candles": candles,
        "alerts": store.alerts(**ALL),
        "trades": store.trades(**ALL),
        "positions": store.positions(),
        "quotes": store.quotes(),
        "counts": store.counts(),
    }


def trade(i: int, ts: int) -> Trade:
    return Trade("binance", "BTC-USDT", i, 100.0 + i, 0.5, "buy", ts, ts + 1)


def candle(open_time: int, close: float = 2.0, revision: int = 0) -> Candle:
    return Candle(
        "binance", "BTC-USDT", "1m", open_time, open_time + 60_000_000, 1.0, 3.0, 0.5, close,
        2.0, 4.0, 2, 1.0, 2.0, 2.0, 1, 2, revision > 0, revision,
    )  # fmt: skip


def small_batch(ts: int = T0) -> CommitBatch:
    return CommitBatch(
        trades=to_table([trade(1, ts), trade(2, ts + 10)], TRADE_SCHEMA),
        candles=[candle(ts - ts % 60_000_000)],
        alerts=[Alert("a1", "whale_trade", "warning", "binance", "BTC-USDT", ts, 1e5, 1e5, "{}")],
        quotes=[Quote("binance", "BTC-USDT", 1.0, 2.0, 3.0, 4.0, ts, ts)],
        positions=[Position("binance", "BTC-USDT", 2, ts + 10, [(1, 2)], 0, 0, 2, 0)],
    )


def test_replaying_the_recorded_files_gives_the_duckdb_results_and_the_reference(
    recorded_batches: list[CommitBatch], warm: PostgresWarehouse, tmp_path: Path
) -> None:
    duck = DuckDBWarehouse(tmp_path / "w.duckdb")
    for batch in recorded_batches:
        warm.commit(batch)
        duck.commit(batch)
    pg, dk = everything(warm), everything(duck)
    assert pg == dk
    assert pg["counts"]["trades_recent"] == 19_904  # type: ignore[index]
    raw = raw_trades([BINANCE_08, BINANCE_09])
    assert_matches_reference(warm.candles(interval="1m", **ALL), reference_candles(raw))
    assert_matches_reference(warm.candles(interval="5m", **ALL), reference_candles(raw, 5))
    # Windows were provisional first and final in the end, as in DuckDB.
    assert len(recorded_batches) > 12
    assert all(c.is_final for c in warm.candles(interval="1m", **ALL))


def test_restore_state_midway_equals_what_duckdb_restores(
    recorded_batches: list[CommitBatch], warm: PostgresWarehouse, tmp_path: Path
) -> None:
    duck = DuckDBWarehouse(tmp_path / "w.duckdb")
    for batch in recorded_batches[: len(recorded_batches) // 2]:
        warm.commit(batch)
        duck.commit(batch)
    positions, windows = warm.restore_state(grace_us=2_000_000, allowed_lateness_us=3_600_000_000)
    assert positions == duck.positions()
    oldest = min(p.max_ts_event for p in positions) - 2_000_000 - 3_600_000_000
    key = lambda w: (w[0].interval, w[0].open_time)  # noqa: E731
    assert sorted(windows, key=key) == sorted(duck.open_windows(oldest), key=key)
    assert any(not c.is_final for c, _, _ in windows)  # open windows exist midway
    # Restoring only some symbols (a consumer's assigned partitions) filters both.
    assert warm.restore_state(
        grace_us=0, allowed_lateness_us=0, keys=[("binance", "ETH-USDT")]
    ) == ([], [])


def test_recommitting_the_same_batches_changes_nothing(
    recorded_batches: list[CommitBatch], warm: PostgresWarehouse
) -> None:
    for batch in recorded_batches:
        warm.commit(batch)
    before = everything(warm)
    with psycopg.connect(warm.dsn) as con:
        stamps = con.execute("SELECT * FROM positions").fetchall()
    last_with_positions = max(i for i, b in enumerate(recorded_batches) if b.positions)
    for batch in recorded_batches[last_with_positions:]:  # redelivered after a crash
        warm.commit(batch)
    assert everything(warm) == before
    with psycopg.connect(warm.dsn) as con:  # not even positions' updated_at moved
        assert con.execute("SELECT * FROM positions").fetchall() == stamps
    for batch in recorded_batches:  # the whole stream again
        warm.commit(batch)
    assert everything(warm) == before


def test_offsets_commit_with_the_batch_and_load_back(warm: PostgresWarehouse) -> None:
    assert warm.load_offsets("g", "marketpipe.trades") == {}
    warm.commit(small_batch(), consumer_group="g", offsets={("marketpipe.trades", 0): 11})
    warm.commit(
        CommitBatch(),  # offsets alone (e.g. only duplicates consumed) still move
        consumer_group="g",
        offsets={("marketpipe.trades", 0): 12, ("marketpipe.trades", 3): 7},
    )
    assert warm.load_offsets("g", "marketpipe.trades") == {0: 12, 3: 7}
    assert warm.load_offsets("other", "marketpipe.trades") == {}
    assert warm.counts()["trades_recent"] == 2


def test_a_failure_mid_commit_leaves_neither_data_nor_offsets(warm: PostgresWarehouse) -> None:
    bad = small_batch()
    # Trades and candles are written first; the alert then violates NOT NULL on kind.
    bad.alerts = [Alert("a2", None, "warning", "binance", "BTC-USDT", T0, 1, 1, "{}")]  # type: ignore[arg-type]
    with pytest.raises(StorageError, match="rolled back"):
        warm.commit(bad, consumer_group="g", offsets={("marketpipe.trades", 0): 99})
    assert warm.counts() == dict.fromkeys(
        ("trades_recent", "late_trades", "candles", "alerts", "dead_letters"), 0
    )
    assert warm.positions() == [] and warm.quotes() == []
    assert warm.load_offsets("g", "marketpipe.trades") == {}
    warm.commit(small_batch(), consumer_group="g", offsets={("marketpipe.trades", 0): 5})
    assert warm.load_offsets("g", "marketpipe.trades") == {0: 5}


def test_fenced_commits_apply_each_spark_batch_once(warm: PostgresWarehouse) -> None:
    first = small_batch()
    assert warm.commit_fenced(first, fence=("q", 0)) is True
    assert warm.fence("q") == 0
    # The same batch id again (a retried micro-batch) is skipped, even with other content.
    retried = CommitBatch(candles=[candle(T0, close=9.0)])
    assert warm.commit_fenced(retried, fence=("q", 0)) is False
    assert warm.candles(interval="1m", **ALL) == first.candles
    # The next batch id replaces the candle (full values), another query has its own fence.
    assert warm.commit_fenced(CommitBatch(candles=[candle(T0, 2.5, 1)]), fence=("q", 1))
    (stored,) = warm.candles(interval="1m", **ALL)
    assert (stored.close, stored.revision, stored.is_final) == (2.5, 1, True)
    assert warm.commit_fenced(CommitBatch(candles=[candle(T0, 3.0, 2)]), fence=("q", 1)) is False
    assert warm.commit_fenced(small_batch(), fence=("other", 0)) is True
    assert warm.counts()["trades_recent"] == 2 and warm.fence("missing") is None


def test_trades_are_partitioned_by_day_and_retention_drops_whole_days(
    warm: PostgresWarehouse,
) -> None:
    for day in range(3):
        ts = T0 + day * DAY + 3_600_000_000
        batch = CommitBatch(
            trades=to_table([trade(10 * day + 1, ts), trade(10 * day + 2, ts + 1)], TRADE_SCHEMA),
            candles=[candle(ts)],
        )
        warm.commit(batch)
    assert warm.partitions() == [
        "trades_recent_p20240809",
        "trades_recent_p20240810",
        "trades_recent_p20240811",
    ]
    with psycopg.connect(warm.dsn) as con:
        per_partition = con.execute(
            "SELECT tableoid::regclass::text, count(*) FROM trades_recent GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert per_partition == [(p, 2) for p in warm.partitions()]

    # The cutoff falls inside the third day: two whole days go, the third stays.
    removed = warm.apply_retention(T0 + 2 * DAY + 1)
    assert removed["trades_recent_partitions"] == 2 and removed["candles"] == 2
    assert warm.partitions() == ["trades_recent_p20240811"]
    assert [t.trade_id for t in warm.trades(**ALL)] == [21, 22]
    # A trade of a dropped day arriving again recreates its partition on demand.
    warm.commit(CommitBatch(trades=to_table([trade(1, T0 + 5)], TRADE_SCHEMA)))
    assert len(warm.partitions()) == 2


def test_the_schema_matches_the_duckdb_store_and_migrations_run_once(
    warm: PostgresWarehouse,
) -> None:
    import duckdb

    duck = duckdb.connect()
    for ddl in TABLES.values():
        duck.execute(ddl)
    with psycopg.connect(warm.dsn) as con:
        for table in ("trades_recent", "late_trades", "candles", "alerts", "quotes",
                      "positions", "dead_letters", "batches"):  # fmt: skip
            pg_columns = [
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                    "ORDER BY ordinal_position",
                    [table],
                )
            ]
            duck_columns = [r[0] for r in duck.execute(f"DESCRIBE {table}").fetchall()]
            assert pg_columns == duck_columns, table
        versions = con.execute("SELECT version FROM schema_migrations").fetchall()
    # Migrating again, from several processes at once, applies nothing twice.
    errors: list[BaseException] = []

    def again() -> None:
        other = PostgresWarehouse(warm.dsn)
        try:
            other.migrate()
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            other.close()

    threads = [threading.Thread(target=again) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with psycopg.connect(warm.dsn) as con:
        assert con.execute("SELECT version FROM schema_migrations").fetchall() == versions


def test_dead_letters_and_late_trades_are_stored_once(warm: PostgresWarehouse) -> None:
    from marketpipe.model.records import DeadLetter

    late = to_table([trade(5, T0 - DAY)], TRADE_SCHEMA)
    batch = CommitBatch(
        trades=late,
        late_trades=late,
        dead_letters=[DeadLetter(T0, "replay", "bad json", b"\x00{oops", "file:1")],
    )
    warm.commit(batch)
    warm.commit(batch)
    counts = warm.counts()
    assert (counts["late_trades"], counts["dead_letters"], counts["trades_recent"]) == (1, 1, 1)
    with psycopg.connect(warm.dsn) as con:
        assert con.execute("SELECT raw FROM dead_letters").fetchone() == (b"\x00{oops",)


def test_the_store_recovers_after_postgres_restarts(private_postgres: ScriptServer) -> None:
    warm = PostgresWarehouse(private_postgres.url, timeout_s=2)
    try:
        warm.migrate()
        warm.commit(small_batch(), consumer_group="g", offsets={("t", 0): 1})
        private_postgres.stop()
        with pytest.raises(StorageError, match="PostgreSQL"):
            warm.commit(small_batch(T0 + DAY), consumer_group="g", offsets={("t", 0): 2})
        private_postgres.start()
        warm.commit(small_batch(T0 + DAY), consumer_group="g", offsets={("t", 0): 2})
        assert warm.load_offsets("g", "t") == {0: 2}
        assert warm.counts()["trades_recent"] == 4
    finally:
        warm.close()


def test_trade_timestamps_and_floats_survive_exactly(warm: PostgresWarehouse) -> None:
    odd = [
        Trade("binance", "ETH-USDT", 7, 0.1 + 0.2, 1e-8, "sell", T0 + 123_457, T0 + 999_999),
        Trade("binance", "ETH-USDT", 8, 61837.63, 123456.789012345, "buy", 1, 2),
    ]
    warm.commit(CommitBatch(trades=to_table(odd, TRADE_SCHEMA)))
    assert warm.trades(**ALL) == sorted(odd, key=lambda t: t.ts_event)


def test_concurrent_writers_of_the_same_trades_never_deadlock(warm: PostgresWarehouse) -> None:
    # The archiver and a processor insert overlapping trades, cut into batches differently.
    trades = [trade(i, T0 + i) for i in range(2000)]
    forward = to_table(trades, TRADE_SCHEMA)
    backward = to_table(trades[::-1], TRADE_SCHEMA)
    errors: list[BaseException] = []

    def write(table: object) -> None:
        try:
            for _ in range(5):
                warm.commit(CommitBatch(trades=table))  # type: ignore[arg-type]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in (forward, backward) * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert warm.counts()["trades_recent"] == 2000
