"""The commit broadcaster: batches published from any thread reach every subscriber's loop,
in order, and a slow queue drops its oldest batches instead of blocking the committer."""

import asyncio
import logging
import threading

import pytest

from marketpipe.bus.broadcast import CommitBroadcaster, Committed
from marketpipe.model.batch import CommitBatch


async def test_batches_published_from_a_thread_reach_queue_and_callback_subscribers() -> None:
    broadcaster = CommitBroadcaster()
    queued = broadcaster.subscribe()
    called: list[Committed] = []
    done = asyncio.Event()

    def on_commit(item: Committed) -> None:
        called.append(item)
        if len(called) == 3:
            done.set()

    broadcaster.subscribe(on_commit)
    batches = [CommitBatch(duplicates=i) for i in range(3)]
    publisher = threading.Thread(
        target=lambda: [broadcaster.publish(b, i) for i, b in enumerate(batches)]
    )
    publisher.start()
    publisher.join()
    await asyncio.wait_for(done.wait(), 5)
    assert [c.batch.duplicates for c in called] == [0, 1, 2]
    got = [await asyncio.wait_for(queued.get(), 5) for _ in range(3)]
    assert [g.batch for g in got] == batches and [g.committed_ns for g in got] == [0, 1, 2]
    broadcaster.unsubscribe(queued)
    assert broadcaster.subscribers == 1


async def test_a_full_subscriber_loses_its_oldest_batches_and_counts_them() -> None:
    broadcaster = CommitBroadcaster(max_pending=2)
    sub = broadcaster.subscribe()
    for i in range(5):
        broadcaster.publish(CommitBatch(duplicates=i))
    await asyncio.sleep(0.05)
    assert sub.dropped == 3
    assert [(await sub.get()).batch.duplicates for _ in range(2)] == [3, 4]


async def test_a_failing_listener_does_not_stop_the_others() -> None:
    broadcaster = CommitBroadcaster()
    seen: list[int] = []

    def broken(item: Committed) -> None:
        raise RuntimeError("listener bug")

    broadcaster.subscribe(broken)
    broadcaster.subscribe(lambda item: seen.append(item.batch.duplicates))
    broadcaster.publish(CommitBatch(duplicates=9))
    await asyncio.sleep(0.05)
    assert seen == [9]


async def test_a_lagging_queue_logs_once_however_many_batches_it_loses(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="marketpipe.bus.broadcast")
    broadcaster = CommitBroadcaster(max_pending=2)
    sub = broadcaster.subscribe()
    for i in range(50):
        broadcaster.publish(CommitBatch(duplicates=i))
    await asyncio.sleep(0.05)
    assert sub.dropped == 48
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "a commit listener fell 2 batches behind: dropping its oldest "
        "(counted in Subscription.dropped)"
    ]
