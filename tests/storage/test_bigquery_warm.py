"""The BigQuery warm store against a real emulator: the DuckDB store's results and the
independent reference on the recorded BTCUSDT files, exactly-once commits with offsets (a
crash between commit point and apply included), fencing by partition epochs, migrations."""

from pathlib import Path

import pytest
from msgspec.structs import replace

from harness.reference import raw_trades, reference_candles
from marketpipe.model.batch import CommitBatch, merge_batches
from marketpipe.model.errors import FencedOut, StorageError
from marketpipe.observability import metrics as m
from marketpipe.storage.bigquery_client import BigQueryLocation
from marketpipe.storage.bigquery_warm import BigQueryWarehouse
from marketpipe.storage.duckdb_warm import DuckDBWarehouse
from tests.conftest import BINANCE_08, BINANCE_09
from tests.embedded.test_replay import assert_matches_reference
from tests.storage.test_postgres_warm import ALL, T0, candle, everything, small_batch

pytestmark = pytest.mark.integration

TRADES = "marketpipe.trades"
QUOTES = "marketpipe.quotes"


@pytest.fixture
def warm(bigquery_location: BigQueryLocation) -> BigQueryWarehouse:
    # Two partitions: BTC-USDT on 0, anything else on 1.
    store = BigQueryWarehouse(bigquery_location, route=lambda _e, s: 0 if s == "BTC-USDT" else 1)
    store.migrate()
    yield store  # type: ignore[misc]
    store.close()


def chunks(batches: list[CommitBatch], n: int) -> list[CommitBatch]:
    """The batches as `n` consecutive merged ones: the same effect in fewer commits."""
    size = -(-len(batches) // n)
    return [merge_batches(batches[i : i + size]) for i in range(0, len(batches), size)]


def test_the_recorded_files_give_the_duckdb_results_and_the_reference(
    recorded_batches: list[CommitBatch], warm: BigQueryWarehouse, tmp_path: Path
) -> None:
    duck = DuckDBWarehouse(tmp_path / "w.duckdb")
    merged = chunks(recorded_batches, 4)
    for batch in merged:
        warm.commit(batch)
        duck.commit(batch)
    bq, dk = everything(warm), everything(duck)  # type: ignore[arg-type]
    counts = bq.pop("counts")
    assert counts == {**dk.pop("counts"), "dead_letters": 0}  # type: ignore[dict-item]
    assert bq == dk
    assert counts["trades_recent"] == 19_904  # type: ignore[index]
    raw = raw_trades([BINANCE_08, BINANCE_09])
    assert_matches_reference(warm.candles(interval="1m", **ALL), reference_candles(raw))
    # Re-delivering a batch after newer ones changes nothing: its trades are stored already,
    # and a stored candle is only replaced by a value that is not older.
    warm.commit(merged[1])
    assert {**everything(warm), "counts": counts} == {**bq, "counts": counts}  # type: ignore[arg-type]


def test_offsets_move_with_the_batch_and_a_recommit_changes_nothing(
    warm: BigQueryWarehouse,
) -> None:
    assert warm.load_offsets("g", TRADES) == {}
    warm.commit(small_batch(), consumer_group="g", offsets={(TRADES, 0): 11, (QUOTES, 0): 3})
    assert warm.load_offsets("g", TRADES) == {0: 11}
    assert warm.load_offsets("g", QUOTES) == {0: 3}
    once = everything(warm)  # type: ignore[arg-type]
    warm.commit(small_batch(), consumer_group="g", offsets={(TRADES, 0): 11})
    assert everything(warm) == once  # type: ignore[arg-type]
    assert warm.counts()["trades_recent"] == 2


def test_a_crash_between_commit_point_and_apply_is_applied_on_the_next_read(
    warm: BigQueryWarehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*_args: object) -> None:
        raise SystemExit("killed after the commit point")

    with monkeypatch.context() as patch:
        patch.setattr(warm, "_apply", crash)
        with pytest.raises(SystemExit):
            warm.commit(small_batch(), consumer_group="g", offsets={(TRADES, 0): 11})
    assert warm.counts()["trades_recent"] == 0  # committed, not yet applied
    assert warm.load_offsets("g", TRADES) == {0: 11}
    assert warm.counts()["trades_recent"] == 0  # reading offsets leaves a live commit alone
    warm.claim_partitions("g", [(TRADES, 1)])
    assert warm.counts()["trades_recent"] == 0  # a claim of another partition too
    warm.claim_partitions("g", [(TRADES, 0)])  # the next owner: it applies the batch
    assert warm.counts()["trades_recent"] == 2
    assert warm.candles(interval="1m", **ALL) == small_batch().candles
    assert warm.recover("g") == 0  # once


def test_a_crash_before_the_commit_point_leaves_nothing(
    warm: BigQueryWarehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*_args: object) -> None:
        raise SystemExit("killed before the commit point")

    with monkeypatch.context() as patch:
        patch.setattr(warm, "_commit_point", crash)
        with pytest.raises(SystemExit):
            warm.commit(small_batch(), consumer_group="g", offsets={(TRADES, 0): 11})
    assert warm.load_offsets("g", TRADES) == {}
    assert warm.counts()["trades_recent"] == 0


def test_claims_raise_epochs_and_a_stale_epoch_is_refused_and_counted(
    warm: BigQueryWarehouse,
) -> None:
    parts = [(TRADES, 0), (QUOTES, 0)]
    first = warm.claim_partitions("g", parts)
    assert first == {(TRADES, 0): 1, (QUOTES, 0): 1}
    warm.commit(small_batch(), consumer_group="g", offsets={(TRADES, 0): 5}, fence=first)
    assert warm.load_offsets("g", TRADES) == {0: 5}  # the equal epoch passes
    second = warm.claim_partitions("g", parts)  # a rebalance gave them to another member
    assert second == {(TRADES, 0): 2, (QUOTES, 0): 2}
    refused = m.COMMITS_FENCED.labels("bigquery", "g")
    before = refused._value.get()
    late = small_batch(T0 + 3_600_000_000)
    applied = warm.rows("SELECT count(*) FROM batches")
    with pytest.raises(FencedOut, match="no longer owns"):
        warm.commit(late, consumer_group="g", offsets={(TRADES, 0): 9}, fence=first)
    assert refused._value.get() == before + 1
    # Not even a `batches` row: the last-commit age in /health stays honest.
    assert warm.rows("SELECT count(*) FROM batches") == applied
    assert warm.load_offsets("g", TRADES) == {0: 5}
    assert warm.counts()["trades_recent"] == 2  # none of the zombie's rows landed
    warm.commit(late, consumer_group="g", offsets={(TRADES, 0): 9}, fence=second)
    assert warm.load_offsets("g", TRADES) == {0: 9}
    assert warm.counts()["trades_recent"] == 4


def test_a_fenced_commit_must_fence_every_offset_it_moves(warm: BigQueryWarehouse) -> None:
    epochs = warm.claim_partitions("g", [(TRADES, 0)])
    with pytest.raises(ValueError, match="fence every partition"):
        warm.commit(small_batch(), consumer_group="g",
                    offsets={(TRADES, 0): 5, (TRADES, 1): 3}, fence=epochs)  # fmt: skip
    assert warm.load_offsets("g", TRADES) == {}


def test_an_unclaimed_partition_is_refused(warm: BigQueryWarehouse) -> None:
    with pytest.raises(FencedOut):
        warm.commit(small_batch(), consumer_group="g", offsets={(TRADES, 0): 5},
                    fence={(TRADES, 0): 1})  # fmt: skip
    assert warm.counts()["trades_recent"] == 0


def test_a_partly_stale_commit_writes_only_the_partitions_still_owned(
    warm: BigQueryWarehouse,
) -> None:
    mine = warm.claim_partitions("g", [(TRADES, 0), (TRADES, 1)])
    warm.claim_partitions("g", [(TRADES, 1)])  # partition 1 moved to another member
    btc = small_batch()
    eth = CommitBatch(candles=[replace(candle(T0 - T0 % 60_000_000), symbol="ETH-USDT")])
    both = merge_batches([btc, eth])
    with pytest.raises(FencedOut, match=r"\(\'marketpipe.trades\', 1\)"):
        warm.commit(both, consumer_group="g", offsets={(TRADES, 0): 7, (TRADES, 1): 4},
                    fence=mine)  # fmt: skip
    assert warm.load_offsets("g", TRADES) == {0: 7}
    assert {c.symbol for c in warm.candles(interval="1m", **ALL)} == {"BTC-USDT"}
    assert warm.counts()["trades_recent"] == 2


def test_a_stored_candle_is_never_replaced_by_an_older_value(warm: BigQueryWarehouse) -> None:
    t = T0 - T0 % 60_000_000
    grown = replace(candle(t, close=5.0), trade_count=3)
    warm.commit(CommitBatch(candles=[grown]))
    older = replace(candle(t, close=9.0), trade_count=2)  # fewer trades: an older value
    warm.commit(CommitBatch(candles=[older]))
    assert warm.candles(interval="1m", **ALL) == [grown]
    final = replace(grown, is_final=True)  # the same trades, now final: replaces
    warm.commit(CommitBatch(candles=[final]))
    assert warm.candles(interval="1m", **ALL) == [final]
    warm.commit(CommitBatch(candles=[grown]))  # the provisional value again: ignored
    assert warm.candles(interval="1m", **ALL) == [final]
    revised = replace(final, revision=1, close=6.0)  # equal trades, a later revision
    warm.commit(CommitBatch(candles=[revised]))
    assert warm.candles(interval="1m", **ALL) == [revised]
    warm.commit(CommitBatch(candles=[final]))
    assert warm.candles(interval="1m", **ALL) == [revised]


def test_migrations_run_once_and_create_every_warm_table(warm: BigQueryWarehouse) -> None:
    warm.migrate()
    rows = warm.rows("SELECT version, name FROM schema_migrations")
    assert sorted(rows) == [(1, "warm_store"), (2, "market_snapshots")]
    tables = set(warm.dataset.tables(""))
    assert {"trades_recent", "late_trades", "candles", "alerts", "quotes", "positions",
            "dead_letters", "batches", "consumer_offsets",
            "market_snapshots"} <= tables  # fmt: skip
    # Staging is this committer's own, reused batch after batch.
    warm.commit(small_batch(), consumer_group="g", offsets={(TRADES, 0): 1})
    warm.commit(small_batch(), consumer_group="g", offsets={(TRADES, 0): 2})
    kinds = ("trades", "candles", "alerts", "quotes", "positions", "offsets")
    assert set(warm.dataset.tables("_")) == {f"_stage_{warm.member}_{k}" for k in kinds}


def test_a_dead_server_is_a_storage_error_within_the_deadline() -> None:
    location = BigQueryLocation("marketpipe-local", "x", endpoint="http://127.0.0.1:9",
                                timeout_s=2.0)  # fmt: skip
    store = BigQueryWarehouse(location)
    with pytest.raises(StorageError, match=r"127\.0\.0\.1:9"):
        store.migrate()


MARKET = "marketpipe.market"


def test_market_snapshots_are_stored_once_with_nulls_and_fenced_offsets(
    warm: BigQueryWarehouse,
) -> None:
    from tests.storage.test_market_snapshots import MINUTE, snap

    epochs = warm.claim_partitions("m", [(MARKET, 0)])
    first = [snap(ts=T0, recv=T0 + 1), snap("ETH", T0, market_cap=None, rank=None),
             snap(ts=T0 + MINUTE, price=2.0)]  # fmt: skip
    warm.commit(CommitBatch(snapshots=first), consumer_group="m", offsets={(MARKET, 0): 3},
                fence=epochs)  # fmt: skip
    # Re-delivered (a later receipt of the same key) and a newer one: one more row only.
    again = [snap(ts=T0, recv=T0 + 9, price=9.0), snap(ts=T0 + 2 * MINUTE, price=3.0)]
    warm.commit(CommitBatch(snapshots=again), consumer_group="m", offsets={(MARKET, 0): 5},
                fence=epochs)  # fmt: skip
    assert warm.load_offsets("m", MARKET) == {0: 5}
    stored = warm.market_snapshots(None, None, None)
    assert stored == sorted([*first, again[1]], key=lambda s: (s.ts_source, s.asset))
    assert [(s.asset, s.price) for s in warm.latest_market_snapshots()] == [
        ("BTC", 3.0),
        ("ETH", 60_000.5),
    ]
    assert warm.market_snapshots("ETH", None, None)[0].market_cap is None
    # A member fenced out moves no offset back.
    warm.claim_partitions("m", [(MARKET, 0)])
    with pytest.raises(FencedOut):
        warm.commit(CommitBatch(snapshots=[snap(ts=T0 + 3 * MINUTE)]), consumer_group="m",
                    offsets={(MARKET, 0): 4}, fence=epochs)  # fmt: skip
    assert warm.load_offsets("m", MARKET) == {0: 5}
