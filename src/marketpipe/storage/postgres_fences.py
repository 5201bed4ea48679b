"""Who may write to the PostgreSQL warm store, checked inside the writer's transaction.

Two kinds of fence: a Kafka consumer's partition epochs (`claim` on assignment, `check`
before every commit: a member that missed a rebalance holds stale epochs) and a Spark
streaming query's last applied batch id (`take_batch`: each micro-batch at most once).
"""

from collections.abc import Collection, Mapping

import psycopg
from psycopg import Cursor
from psycopg.rows import TupleRow

from marketpipe.model.errors import FencedOut

Connection = psycopg.Connection[TupleRow]


def claim(
    conn: Connection, consumer_group: str, partitions: Collection[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """Raise each partition's epoch by one (the first claim gives 1), in one transaction;
    returns the new epochs."""
    wanted = sorted(set(partitions))  # one lock order for every claimer: no deadlock
    if not wanted:
        return {}
    with conn.transaction():
        rows = conn.execute(
            "INSERT INTO partition_epochs "
            "SELECT %s, t.topic, t.partition, 1, now() "
            "FROM unnest(%s::text[], %s::int[]) WITH ORDINALITY "
            "AS t(topic, partition, n) ORDER BY t.n "
            "ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET "
            "epoch = partition_epochs.epoch + 1, claimed_at = EXCLUDED.claimed_at "
            "RETURNING topic, partition, epoch",
            [consumer_group, [t for t, _ in wanted], [p for _, p in wanted]],
        ).fetchall()
    return {(str(t), int(p)): int(e) for t, p, e in rows}


def check(cur: Cursor[TupleRow], consumer_group: str, fence: Mapping[tuple[str, int], int]) -> None:
    """Lock the fenced partitions' epoch rows (shared: members never hold the same partition,
    and a claim must wait for a commit already past this check) and refuse a stale epoch."""
    wanted = sorted(fence)
    rows = cur.execute(
        "SELECT e.topic, e.partition, e.epoch FROM partition_epochs e "
        "JOIN unnest(%s::text[], %s::int[]) AS t(topic, partition) "
        "ON (e.topic, e.partition) = (t.topic, t.partition) "
        "WHERE e.consumer_group = %s ORDER BY e.topic, e.partition FOR SHARE OF e",
        [[t for t, _ in wanted], [p for _, p in wanted], consumer_group],
    ).fetchall()
    stored = {(str(t), int(p)): int(e) for t, p, e in rows}
    # A partition never claimed has no owner to prove: refused like a stale one.
    stale = {k: (e, stored.get(k)) for k, e in fence.items() if stored.get(k) != e}
    if stale:
        detail = ", ".join(
            f"{t}[{p}] epoch {mine} (now {'unclaimed' if now is None else now})"
            for (t, p), (mine, now) in sorted(stale.items())
        )
        raise FencedOut(f"{consumer_group}: partitions claimed by another member: {detail}")


def take_batch(cur: Cursor[TupleRow], query_name: str, batch_id: int) -> bool:
    """In the caller's transaction: True (and the fence moved to `batch_id`) unless the
    query already applied this batch id or a later one."""
    cur.execute(
        "INSERT INTO batch_fences VALUES (%s, -1, now()) ON CONFLICT DO NOTHING", [query_name]
    )
    cur.execute("SELECT batch_id FROM batch_fences WHERE query_name = %s FOR UPDATE", [query_name])
    row = cur.fetchone()
    assert row is not None
    if int(row[0]) >= batch_id:
        return False
    cur.execute(
        "UPDATE batch_fences SET batch_id = %s, applied_at = now() WHERE query_name = %s",
        [batch_id, query_name],
    )
    return True
