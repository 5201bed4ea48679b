"""Gap counting at its edges, and ids beyond float precision (`processing/ledger.py`)."""

import numpy as np

from marketpipe.processing.ledger import IdLedger


def ids(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def test_a_run_continuing_the_top_is_no_gap_and_one_missing_id_is_one() -> None:
    ledger = IdLedger()
    ledger.add(ids(1, 2, 3))
    ledger.add(ids(4, 5))  # adjacent to the top: no gap
    assert (ledger.gaps_found, ledger.ranges) == (0, [(1, 5)])
    ledger.add(ids(7))  # exactly one id (6) missing
    assert (ledger.gaps_found, ledger.ranges) == (1, [(1, 5), (7, 7)])


def test_holes_inside_the_first_batch_are_gaps_found() -> None:
    ledger = IdLedger()
    ledger.add(ids(1, 2, 5, 9))
    assert (ledger.gaps_found, ledger.holes, ledger.ranges) == (2, 2, [(1, 2), (5, 5), (9, 9)])


def test_ids_beyond_two_to_the_53_stay_exact_from_an_empty_ledger() -> None:
    big = 2**53 + 1  # not a float64: an empty float array would round it
    ledger = IdLedger([])
    ledger.add(ids(big))
    assert ledger.ranges == [(big, big)] and ledger.max_id == big
    assert ledger.unseen(ids(big - 1, big, big + 1)).tolist() == [True, False, True]
