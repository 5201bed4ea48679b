"""The shared reference itself (harness/reference.py): its tie-breaks, sums and the rule it
compares by, on trades small enough to check by hand."""

from dataclasses import dataclass, replace

import pytest

from harness.reference import (
    ReferenceCandle,
    ReferenceHour,
    assert_candles_match,
    reference_candles,
    reference_hours,
    sums_agree,
)

# Equal trade times, ids out of order: open is id 1's price, close id 3's.
TRADES = [
    ("XUSDT", 3, 30.0, 1.0, False, 60_000),
    ("XUSDT", 1, 10.0, 2.0, True, 60_000),
    ("XUSDT", 2, 20.0, 1.0, False, 60_000),
]


@dataclass(frozen=True)
class Stored:
    open_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    taker_buy_volume: float
    taker_buy_quote_volume: float
    vwap: float
    trade_count: int
    first_trade_id: int
    last_trade_id: int


RIGHT = Stored(60_000_000, 10.0, 30.0, 10.0, 30.0, 4.0, 70.0, 2.0, 50.0, 17.5, 3, 1, 3)


def test_open_and_close_break_equal_times_by_trade_id() -> None:
    assert reference_candles(TRADES) == [
        ReferenceCandle("XUSDT", 60_000, 10.0, 30.0, 10.0, 30.0, 4.0, 70.0, 3, 2.0, 1, 3, 50.0)
    ]
    assert reference_candles([]) == []


def test_hours_count_id_holes_in_completeness() -> None:
    trades = [*TRADES, ("XUSDT", 6, 40.0, 1.0, True, 3_599_999), ("YUSDT", 9, 1.0, 1.0, True, 0)]
    assert reference_hours(trades, "XUSDT") == [
        ReferenceHour(0, 10.0, 40.0, 10.0, 40.0, 110.0 / 5.0, 5.0, 4, 100.0 * 4 / 6)
    ]


def test_a_matching_candle_passes_and_each_wrong_field_is_named() -> None:
    (ref,) = reference_candles(TRADES)
    assert_candles_match([RIGHT], [ref])
    assert_candles_match([replace(RIGHT, volume=4.0 * (1 + 1e-10))], [ref])
    for change, message in [
        ({"open": 20.0}, "open 20.0 != 10.0"),
        ({"last_trade_id": 2}, "last_trade_id 2 != 3"),
        ({"open_time": 60_000}, "open_time 60000 != 60000000"),
        ({"taker_buy_quote_volume": 50.001}, "taker_buy_quote_volume 50.001 !~ 50.0"),
    ]:
        with pytest.raises(AssertionError, match=f"XUSDT window 60000: {message}$"):
            assert_candles_match([replace(RIGHT, **change)], [ref])  # type: ignore[arg-type]
    with pytest.raises(AssertionError, match="0 candles, reference has 1"):
        assert_candles_match([], [ref])


def test_sums_agree_to_a_relative_1e_9() -> None:
    assert sums_agree(1e6, 1e6 * (1 + 0.9e-9))
    assert not sums_agree(1e6, 1e6 * (1 + 1.1e-9))
    assert sums_agree(0.0, 1e-13) and not sums_agree(0.0, 1e-11)
