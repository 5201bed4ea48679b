"""Coinbase messages look like the real recorded ones (tests/data/coinbase, 2021-04-17)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from marketpipe.simulator.coinbase import frames
from marketpipe.simulator.formats import decimals_of, fixed, iso_us

pytestmark = pytest.mark.unit

RECORDING = Path(__file__).parents[2] / "data" / "coinbase" / "cryptofeed-COINBASE.ws.28.0.gz"


def _recorded(kind: str) -> dict[str, object]:
    with gzip.open(RECORDING, "rt") as lines:
        for line in lines:
            _, _, raw = line.partition(": ")
            if raw.startswith(f'{{"type":"{kind}"'):
                return dict(json.loads(raw))
    raise AssertionError(f"no {kind} in the recording")


def test_match_and_last_match_have_the_recorded_keys_in_order() -> None:
    ours = json.loads(frames.match("match", "BTC-USD", 7, "sell", "0.5", "100.01", 9, 1, 3))
    assert list(ours) == list(_recorded("match"))
    last = json.loads(frames.match("last_match", "BTC-USD", 7, "buy", "1", "2", 9, 1, 3))
    assert list(last) == list(_recorded("last_match"))


def test_ticker_has_every_recorded_key_plus_the_book_sizes() -> None:
    ours = json.loads(
        frames.ticker(
            "BTC-USD", 5, "1.00", ("1", "2", "3", "4"), ("1", "2", "3", "4"), "buy", 1, 2, "3"
        )
    )
    recorded = list(_recorded("ticker"))
    assert [k for k in ours if k in recorded] == recorded
    assert set(ours) - set(recorded) == {"best_bid_size", "best_ask_size"}


def test_order_ids_are_deterministic_uuids_distinct_for_maker_and_taker() -> None:
    maker, taker = frames.order_id(1, 42, False), frames.order_id(1, 42, True)
    assert maker == frames.order_id(1, 42, False) and maker != taker
    parts = maker.split("-")
    assert [len(p) for p in parts] == [8, 4, 4, 4, 12] and parts[2][0] == "4"


def test_numbers_print_in_the_products_increments_and_times_with_microseconds() -> None:
    assert decimals_of(1_000_000) == 2 and decimals_of(100_000_000) == 0 and decimals_of(1) == 8
    assert fixed(6_183_763_000_000, 2) == "61837.63"
    assert fixed(98_500_000_000, 0) == "985"
    assert fixed(4_000_000, 8) == "0.04000000"
    assert iso_us(1_618_677_817_089_723) == "2021-04-17T16:43:37.089723Z"
    assert iso_us(1_618_677_817_000_001) == "2021-04-17T16:43:37.000001Z"
