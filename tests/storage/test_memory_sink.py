"""MemorySink's partition fencing, as the PostgreSQL warehouse's: claims raise epochs, a commit
with the current epochs lands, one with a stale, unclaimed or unknown-higher epoch is refused
as a whole, counted and raised."""

import pytest
from msgspec.structs import replace

from marketpipe.model.batch import CommitBatch, merge_batches
from marketpipe.model.errors import FencedOut
from marketpipe.observability.metrics import REGISTRY
from marketpipe.storage.memory_sink import MemorySink
from tests.storage.test_postgres_warm import T0, candle, small_batch

TRADES = "marketpipe.trades"
QUOTES = "marketpipe.quotes"


def fenced(group: str) -> float:
    labels = {"warehouse": "memory", "consumer_group": group}
    return REGISTRY.get_sample_value("warehouse_commits_fenced_total", labels) or 0.0


def stored(sink: MemorySink) -> tuple[object, ...]:
    return (dict(sink.candle_map), dict(sink.trade_map), dict(sink.alerts),
            dict(sink.position_map), dict(sink.offsets), sink.commits)  # fmt: skip


def test_each_claim_raises_the_epochs_of_that_group_only() -> None:
    sink = MemorySink()
    parts = [(TRADES, 0), (QUOTES, 0), (TRADES, 0)]  # a repeat is claimed once
    assert sink.claim_partitions("g", parts) == {(TRADES, 0): 1, (QUOTES, 0): 1}
    assert sink.claim_partitions("g", [(TRADES, 0)]) == {(TRADES, 0): 2}
    assert sink.claim_partitions("other", [(TRADES, 0)]) == {(TRADES, 0): 1}
    assert sink.claim_partitions("g", []) == {}


def test_the_current_epochs_let_the_commit_and_its_offsets_land() -> None:
    sink = MemorySink()
    epochs = sink.claim_partitions("g", [(TRADES, 0), (QUOTES, 0)])
    sink.commit(small_batch(), consumer_group="g", offsets={(TRADES, 0): 5}, fence=epochs)
    assert sink.load_offsets("g", TRADES) == {0: 5}
    assert len(sink.trade_map) == 2 and len(sink.candle_map) == 1


def test_a_stale_epoch_refuses_the_whole_commit_and_counts_it() -> None:
    sink = MemorySink()
    parts = [(TRADES, 0), (TRADES, 1)]
    first = sink.claim_partitions("z", parts)
    sink.commit(small_batch(), consumer_group="z", offsets={(TRADES, 0): 5}, fence=first)
    sink.claim_partitions("z", [(TRADES, 1)])  # partition 1 moved to another member
    before, counted = stored(sink), fenced("z")
    # Partition 0 is still this member's, but the commit is one outcome: none of it lands.
    eth = CommitBatch(candles=[replace(candle(T0 - T0 % 60_000_000), symbol="ETH-USDT")])
    late = merge_batches([small_batch(T0 + 3_600_000_000), eth])
    with pytest.raises(FencedOut, match=r"'marketpipe.trades', 1"):
        sink.commit(late, consumer_group="z", offsets={(TRADES, 0): 9, (TRADES, 1): 4},
                    fence=first)  # fmt: skip
    assert stored(sink) == before
    assert fenced("z") == counted + 1


@pytest.mark.parametrize(
    "fence",
    [{(TRADES, 0): 1, (TRADES, 7): 1}, {(TRADES, 0): 2}, {(TRADES, 0): 0}],
    ids=["unclaimed", "higher", "lower"],
)
def test_an_epoch_other_than_the_last_claim_is_refused(fence: dict[tuple[str, int], int]) -> None:
    sink = MemorySink()
    sink.claim_partitions("g", [(TRADES, 0)])
    with pytest.raises(FencedOut):
        sink.commit(small_batch(), consumer_group="g", offsets={(TRADES, 0): 5}, fence=fence)
    assert sink.commits == 0 and not sink.offsets and not sink.trade_map


def test_unfenced_commits_are_not_checked_and_fences_need_a_group() -> None:
    sink = MemorySink()
    sink.claim_partitions("g", [(TRADES, 0)])
    sink.commit(small_batch(), consumer_group="g", offsets={(TRADES, 0): 5})  # no fence
    sink.commit(small_batch())  # embedded mode: no group, no offsets
    assert sink.commits == 2
    with pytest.raises(ValueError, match="consumer_group"):
        sink.commit(small_batch(), fence={(TRADES, 0): 1})
