"""Partition fencing in the PostgreSQL warm store (real server): claims bump epochs, a commit
lands only while its epochs are the stored ones, and a refused commit leaves nothing behind
(candles, trades, offsets, positions) and is counted."""

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from marketpipe.model.errors import FencedOut, StorageError
from marketpipe.observability.metrics import REGISTRY
from marketpipe.storage.postgres_warm import PostgresWarehouse
from tests.storage.test_postgres_warm import ALL, T0, candle, everything, small_batch

pytestmark = pytest.mark.integration

GROUP = "native"
P0, P1, Q0 = ("t.trades", 0), ("t.trades", 1), ("t.quotes", 0)


@pytest.fixture
def warm(postgres_dsn: str) -> Iterator[PostgresWarehouse]:
    store = PostgresWarehouse(postgres_dsn)
    store.migrate()
    yield store
    store.close()


def fenced_count(group: str = GROUP) -> float:
    value = REGISTRY.get_sample_value(
        "warehouse_commits_fenced_total", {"warehouse": "postgres", "consumer_group": group}
    )
    return value or 0.0


def stored_epochs(store: PostgresWarehouse) -> dict[tuple[str, str, int], int]:
    rows = store.rows("SELECT consumer_group, topic, partition, epoch FROM partition_epochs")
    return {(g, t, p): e for g, t, p, e in rows}


def test_the_migration_creates_partition_epochs_keyed_by_group_topic_partition(
    warm: PostgresWarehouse,
) -> None:
    columns = warm.rows(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = 'partition_epochs' ORDER BY ordinal_position"
    )
    assert [c for (c,) in columns] == ["consumer_group", "topic", "partition", "epoch",
                                       "claimed_at"]  # fmt: skip
    key = warm.rows(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'partition_epochs'::regclass "
        "AND i.indisprimary"
    )
    assert {k for (k,) in key} == {"consumer_group", "topic", "partition"}
    assert warm.rows("SELECT version, name FROM schema_migrations WHERE version = 3") == [
        (3, "partition_epochs")
    ]


def test_each_claim_bumps_the_claimed_partitions_only_per_group(warm: PostgresWarehouse) -> None:
    assert warm.claim_partitions(GROUP, []) == {}
    assert warm.claim_partitions(GROUP, [P0, P1, Q0]) == {P0: 1, P1: 1, Q0: 1}
    assert warm.claim_partitions(GROUP, [P1]) == {P1: 2}
    assert warm.claim_partitions(GROUP, [P1, P0, P1]) == {P0: 2, P1: 3}  # a repeat counts once
    assert warm.claim_partitions("archive", [P1]) == {P1: 1}  # groups are independent
    assert stored_epochs(warm) == {
        (GROUP, *P0): 2, (GROUP, *P1): 3, (GROUP, *Q0): 1, ("archive", *P1): 1,
    }  # fmt: skip


def test_a_commit_with_the_current_epochs_lands(warm: PostgresWarehouse) -> None:
    epochs = warm.claim_partitions(GROUP, [P0, Q0])
    warm.commit(small_batch(), consumer_group=GROUP, offsets={P0: 7}, fence=epochs)
    assert warm.load_offsets(GROUP, P0[0]) == {0: 7}
    assert warm.counts()["trades_recent"] == 2
    assert len(warm.candles(interval="1m", **ALL)) == 1
    assert fenced_count() == 0


def test_a_commit_with_a_stale_epoch_rolls_back_everything_and_is_counted(
    warm: PostgresWarehouse,
) -> None:
    mine = warm.claim_partitions(GROUP, [P0, P1])
    warm.commit(small_batch(), consumer_group=GROUP, offsets={P0: 10, P1: 5}, fence=mine)
    before = everything(warm), warm.load_offsets(GROUP, P0[0])
    warm.claim_partitions(GROUP, [P1])  # another member took P1; P0 is still mine
    zombie = small_batch(T0 + 60_000_000)  # the next minute: new trades, candle, position
    zombie.candles.append(candle(T0, close=9.0, revision=1))  # and an overwrite of the first
    counted = fenced_count()
    with pytest.raises(FencedOut, match=r"t\.trades\[1\] epoch 1 \(now 2\)") as refused:
        warm.commit(zombie, consumer_group=GROUP, offsets={P0: 3, P1: 2}, fence=mine)
    assert not isinstance(refused.value, StorageError)  # so until_stored never retries it
    assert (everything(warm), warm.load_offsets(GROUP, P0[0])) == before
    assert fenced_count() == counted + 1


@pytest.mark.parametrize(("given", "lands"), [(4, True), (3, False), (5, False)])
def test_only_the_stored_epoch_itself_passes(
    warm: PostgresWarehouse, given: int, lands: bool
) -> None:
    for _ in range(4):
        warm.claim_partitions(GROUP, [P0])  # stored epoch: 4
    commit = lambda: warm.commit(  # noqa: E731
        small_batch(), consumer_group=GROUP, offsets={P0: 1}, fence={P0: given}
    )
    if lands:
        commit()
    else:
        with pytest.raises(FencedOut):
            commit()
    assert warm.load_offsets(GROUP, P0[0]) == ({0: 1} if lands else {})


def test_a_partition_never_claimed_is_refused(warm: PostgresWarehouse) -> None:
    """No row means nobody proved ownership: a fence naming it is refused, not waved through
    (an epoch that was never handed out cannot be current)."""
    epochs = warm.claim_partitions(GROUP, [P0])
    warm.claim_partitions("other-group", [P1])  # claimed, but by another group
    with pytest.raises(FencedOut, match=r"t\.trades\[1\] epoch 1 \(now unclaimed\)"):
        warm.commit(small_batch(), consumer_group=GROUP, offsets={P0: 1}, fence={**epochs, P1: 1})
    assert warm.counts()["trades_recent"] == 0
    # Without a fence (embedded-style commits, Spark) nothing is checked.
    warm.commit(small_batch(), consumer_group=GROUP, offsets={P1: 1})
    assert warm.load_offsets(GROUP, P1[0]) == {1: 1}


def test_a_fence_needs_a_consumer_group(warm: PostgresWarehouse) -> None:
    with pytest.raises(ValueError, match="consumer_group"):
        warm.commit(small_batch(), fence={P0: 1})


def test_a_claim_racing_a_commit_refuses_it_once_the_claim_commits(
    warm: PostgresWarehouse,
) -> None:
    """The commit locks the epoch rows: a claim in flight (uncommitted) holds the commit at
    the check, and once the claim commits the commit sees the new epoch and is refused."""
    mine = warm.claim_partitions(GROUP, [P0])
    outcome: list[BaseException | None] = []

    def late_commit() -> None:
        try:
            warm.commit(small_batch(), consumer_group=GROUP, offsets={P0: 9}, fence=mine)
            outcome.append(None)
        except BaseException as exc:  # reported below
            outcome.append(exc)

    with psycopg.connect(warm.dsn) as other:  # the new owner's claim, still open
        other.execute(
            "UPDATE partition_epochs SET epoch = epoch + 1 WHERE consumer_group = %s", [GROUP]
        )
        worker = threading.Thread(target=late_commit)
        worker.start()
        time.sleep(1.0)
        assert worker.is_alive() and not outcome  # waiting on the row lock
        other.commit()
    worker.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], FencedOut)
    assert warm.load_offsets(GROUP, P0[0]) == {}
