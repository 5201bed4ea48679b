import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from marketpipe.processing.ledger import IdLedger


def ids(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def test_consecutive_ids_stay_one_range_and_repeat_ids_are_not_new() -> None:
    ledger = IdLedger()
    ledger.add(ids(10, 11, 12))
    ledger.add(ids(13, 14))
    assert ledger.ranges == [(10, 14)]
    assert ledger.unseen(ids(9, 10, 14, 15)).tolist() == [True, False, False, True]


def test_a_jump_is_a_gap_found_and_filling_it_counts_as_filled() -> None:
    ledger = IdLedger()
    ledger.add(ids(1, 2, 3))
    ledger.add(ids(7, 8))
    assert (ledger.gaps_found, ledger.holes, ledger.gaps_filled) == (1, 1, 0)
    ledger.add(ids(4, 5, 6))
    assert ledger.ranges == [(1, 8)]
    assert (ledger.gaps_found, ledger.holes, ledger.gaps_filled) == (1, 0, 1)


@given(st.lists(st.sets(st.integers(0, 300), max_size=40), max_size=8))
def test_ledger_ranges_equal_the_set_of_all_ids_added(batches: list[set[int]]) -> None:
    ledger = IdLedger()
    seen: set[int] = set()
    for batch in batches:
        array = np.array(sorted(batch), dtype=np.int64)
        expected_new = [i not in seen for i in sorted(batch)]
        assert ledger.unseen(array).tolist() == expected_new
        ledger.add(array[ledger.unseen(array)])
        seen |= batch
    covered = {i for lo, hi in ledger.ranges for i in range(lo, hi + 1)}
    assert covered == seen
    # ranges are disjoint and not adjacent
    for (_, hi), (lo, _) in zip(ledger.ranges, ledger.ranges[1:], strict=False):
        assert lo > hi + 1
