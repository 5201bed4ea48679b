"""The broadcaster's two stages: a batch published provisionally (folded, not yet committed)
reaches only the subscribers that asked for it; its commit then tells each subscriber whether
it already had the provisional part, so nothing is pushed twice; a failed commit is announced
to those who saw the batch, and nothing stays in flight."""

import asyncio
import threading

from marketpipe.bus.broadcast import (
    Abandoned,
    CommitBroadcaster,
    Committed,
    Provisional,
    Publication,
    Subscription,
)
from marketpipe.model.batch import CommitBatch


async def _drain(sub: Subscription) -> list[Publication]:
    await asyncio.sleep(0.05)  # the items hop through call_soon_threadsafe
    out: list[Publication] = []
    while not sub.queue.empty():
        out.append(sub.queue.get_nowait())
    return out


async def test_provisional_then_committed_reach_an_opted_in_subscriber_once_each() -> None:
    broadcaster = CommitBroadcaster()
    early = broadcaster.subscribe(provisional=True)
    plain = broadcaster.subscribe()
    batch = CommitBatch(duplicates=1)
    publisher = threading.Thread(
        target=lambda: (broadcaster.publish_provisional(batch, 5), broadcaster.publish(batch, 9))
    )
    publisher.start()
    publisher.join()
    assert await _drain(early) == [Provisional(batch, 5), Committed(batch, 9, early=True)]
    # Without provisional=True: only the commit, as the whole batch (nothing seen before).
    assert await _drain(plain) == [Committed(batch, 9, early=False)]
    assert broadcaster.in_flight == 0


async def test_a_batch_never_published_provisionally_commits_as_a_whole() -> None:
    # advance_idle / flush batches, and cluster mode's Redis relay, only ever call publish.
    broadcaster = CommitBroadcaster()
    sub = broadcaster.subscribe(provisional=True)
    batch = CommitBatch(duplicates=2)
    broadcaster.publish(batch, 3)
    assert await _drain(sub) == [Committed(batch, 3, early=False)]


async def test_a_subscriber_joining_between_the_stages_gets_the_whole_batch_at_commit() -> None:
    broadcaster = CommitBroadcaster()
    first = broadcaster.subscribe(provisional=True)
    batch = CommitBatch(duplicates=3)
    broadcaster.publish_provisional(batch, 1)
    late = broadcaster.subscribe(provisional=True)
    broadcaster.publish(batch, 2)
    assert [type(i) for i in await _drain(first)] == [Provisional, Committed]
    assert await _drain(late) == [Committed(batch, 2, early=False)]


async def test_an_equal_but_different_batch_is_not_taken_for_the_provisional_one() -> None:
    # Identity, not equality: two empty batches compare equal but are two commits.
    broadcaster = CommitBroadcaster()
    sub = broadcaster.subscribe(provisional=True)
    pushed, other = CommitBatch(), CommitBatch()
    assert pushed == other
    broadcaster.publish_provisional(pushed, 1)
    broadcaster.publish(other, 2)
    broadcaster.publish(pushed, 3)
    items = await _drain(sub)
    assert [(type(i), getattr(i, "early", None)) for i in items] == [
        (Provisional, None),
        (Committed, False),
        (Committed, True),
    ]
    assert items[1].batch is other and items[2].batch is pushed


async def test_a_failed_commit_is_announced_to_those_who_saw_the_batch_only() -> None:
    broadcaster = CommitBroadcaster()
    early = broadcaster.subscribe(provisional=True)
    plain = broadcaster.subscribe()
    batch = CommitBatch(duplicates=4)
    broadcaster.publish_provisional(batch, 1)
    assert broadcaster.in_flight == 1
    broadcaster.abandon(batch, OSError("No space left on device"))
    assert broadcaster.in_flight == 0
    assert await _drain(early) == [
        Provisional(batch, 1),
        Abandoned(batch, "No space left on device"),
    ]
    assert await _drain(plain) == []
    broadcaster.abandon(batch, "again")  # nothing in flight: nothing to announce
    assert await _drain(early) == []


async def test_with_no_opted_in_subscriber_nothing_is_held_in_flight() -> None:
    broadcaster = CommitBroadcaster()
    plain = broadcaster.subscribe()
    batch = CommitBatch(duplicates=5)
    broadcaster.publish_provisional(batch, 1)
    assert broadcaster.in_flight == 0
    broadcaster.publish(batch, 2)
    assert await _drain(plain) == [Committed(batch, 2, early=False)]
