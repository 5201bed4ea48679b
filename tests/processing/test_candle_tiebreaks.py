"""Open and close among trades (and partial candles) with equal event times: the trade id
breaks the tie, whatever the arrival order, in every place candles are built or merged —
`partial_candles`, `rollup_partials` (Polars and native), `CandleAcc.merge`, and the engine on
each of its paths (rows and Polars, folding in Python or natively).

Every case feeds the tied rows in each order, so a rule that picks by position (or by an
unstable sort on event time alone) fails on at least one of them. Expected values come from
a plain-Python sort by `(ts_event, trade_id)` that shares no code with the engine."""

import itertools
from collections.abc import Callable

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketpipe.config import AlertSettings
from marketpipe.model.records import Candle, Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.observability import native
from marketpipe.processing import candles, native_fold
from marketpipe.processing.alerts import AlertRules
from marketpipe.processing.candles import CandleAcc
from marketpipe.processing.engine import CandleEngine
from tests.processing.test_engine_properties import frame

MIN = 60_000_000
T0 = 1_723_161_600_000_000  # 2024-08-09 00:00 UTC
# The native cases run wherever the extension is active (`make install` builds it where cargo
# is; tests/observability/test_native.py fails if it is missing there).
NATIVE = pytest.mark.skipif(
    native.extension() is None, reason=f"native path inactive: {native.status().reason}"
)
# The engine's paths: (native fold?, row_path_max); native rows fold natively at any size.
PATHS = pytest.mark.parametrize(
    "path",
    [
        pytest.param((False, 10**9), id="row-path"),
        pytest.param((False, 0), id="polars-path"),
        pytest.param((True, 0), id="native-polars-path", marks=NATIVE),
        pytest.param((True, 10**9), id="native-row-path", marks=NATIVE),
    ],
)
Fold = Callable[[pl.DataFrame, int], pl.DataFrame]
FOLDS = pytest.mark.parametrize(
    ("partial_candles", "rollup_partials"),
    [
        pytest.param(candles.partial_candles, candles.rollup_partials, id="polars"),
        pytest.param(
            native_fold.partial_candles, native_fold.rollup_partials, id="native", marks=NATIVE
        ),
    ],
)


def trade(trade_id: int, ts: int, price: float | None = None, qty: float = 1.0) -> Trade:
    """A trade whose price is its id (unless given), so a wrong pick shows in the price."""
    p = float(trade_id) if price is None else price
    return Trade("binance", "BTC-USDT", trade_id, p, qty, "buy", ts, ts)


def first_and_last(trades: list[Trade]) -> tuple[Trade, Trade]:
    ordered = sorted(trades, key=lambda t: (t.ts_event, t.trade_id))
    return ordered[0], ordered[-1]


def order_id(order: tuple[object, ...]) -> str:
    """Test id of a permutation: the trade ids (or partial open ids) in the order given."""
    return "-".join(
        str(x.trade_id if isinstance(x, Trade) else x["open_id"])  # type: ignore[index]
        for x in order
    )


TIED = [trade(i, T0 + 5) for i in (11, 12, 13, 14)]  # four trades, one event time


@pytest.mark.parametrize("order", list(itertools.permutations(TIED)), ids=order_id)
@FOLDS
def test_partial_candles_break_event_time_ties_by_trade_id(
    order: tuple[Trade, ...], partial_candles: Fold, rollup_partials: Fold
) -> None:
    (row,) = partial_candles(frame(list(order)), MIN).iter_rows(named=True)
    assert (row["open"], row["open_ts"], row["open_id"]) == (11.0, T0 + 5, 11)
    assert (row["close"], row["close_ts"], row["close_id"]) == (14.0, T0 + 5, 14)


def partial(open_id: int, close_id: int, open_ts: int, close_ts: int) -> dict[str, object]:
    """A 1m partial candle whose open and close prices are its first and last trade ids."""
    return {
        "exchange": "binance", "symbol": "BTC-USDT", "open_time": T0,
        "open": float(open_id), "open_ts": open_ts, "open_id": open_id,
        "close": float(close_id), "close_ts": close_ts, "close_id": close_id,
        "high": 99.0, "low": 1.0, "volume": 1.0, "quote_volume": 1.0, "trade_count": 2,
        "taker_buy_volume": 0.0, "taker_buy_quote_volume": 0.0,
    }  # fmt: skip


# Partials of one minute from different partitions, sharing their first and last event times.
TIED_PARTIALS = [
    partial(5, 9, T0 + 10, T0 + 50),
    partial(3, 7, T0 + 10, T0 + 50),
    partial(4, 8, T0 + 10, T0 + 50),
]


@FOLDS
@pytest.mark.parametrize("length", [MIN, 5 * MIN, 60 * MIN], ids=["1m", "5m", "1h"])
@pytest.mark.parametrize("order", list(itertools.permutations(TIED_PARTIALS)), ids=order_id)
def test_rollup_picks_open_and_close_among_tied_partials_by_trade_id(
    order: tuple[dict[str, object], ...], length: int, partial_candles: Fold, rollup_partials: Fold
) -> None:
    (row,) = rollup_partials(pl.DataFrame(list(order)), length).iter_rows(named=True)
    assert (row["open"], row["open_ts"], row["open_id"]) == (3.0, T0 + 10, 3)
    assert (row["close"], row["close_ts"], row["close_id"]) == (9.0, T0 + 50, 9)
    assert (row["open_time"], row["trade_count"], row["high"], row["low"]) == (T0, 6, 99.0, 1.0)


@FOLDS
def test_rollup_orders_by_event_time_before_trade_id(
    partial_candles: Fold, rollup_partials: Fold
) -> None:
    # The lower id opens later: event time wins; the higher id closes earlier: event time wins.
    early_high_id = partial(9, 9, T0 + 10, T0 + 20)
    late_low_id = partial(2, 2, T0 + 30, T0 + 40)
    for rows in ([early_high_id, late_low_id], [late_low_id, early_high_id]):
        (row,) = rollup_partials(pl.DataFrame(rows), 5 * MIN).iter_rows(named=True)
        assert (row["open"], row["open_id"], row["close"], row["close_id"]) == (9.0, 9, 2.0, 2)


def acc(open_id: int, close_id: int, open_ts: int, close_ts: int) -> CandleAcc:
    return CandleAcc.from_partial(partial(open_id, close_id, open_ts, close_ts))


@pytest.mark.parametrize("swap", [False, True])
def test_merging_accumulators_breaks_ties_by_trade_id_in_either_direction(swap: bool) -> None:
    a, b = acc(5, 7, T0 + 10, T0 + 50), acc(3, 9, T0 + 10, T0 + 50)
    if swap:
        a, b = b, a
    a.merge(b)
    assert (a.open, a.open_key, a.close, a.close_key) == (3.0, (T0 + 10, 3), 9.0, (T0 + 50, 9))
    assert (a.trade_count, a.volume) == (4, 2.0)


def engine(path: tuple[bool, int]) -> CandleEngine:
    use_native, row_path_max = path
    return CandleEngine(
        AlertRules(AlertSettings()),
        grace_us=3600 * 1_000_000,  # nothing goes final: only the merge is under test
        allowed_lateness_us=3600 * 1_000_000,
        row_path_max=row_path_max,
        native=use_native,
        native_row_fold_min=0,
    )


def open_close(candles: list[Candle]) -> dict[str, tuple[float, int, float, int]]:
    return {c.interval: (c.open, c.first_trade_id, c.close, c.last_trade_id) for c in candles}


@PATHS
@pytest.mark.parametrize("order", list(itertools.permutations(TIED)), ids=order_id)
def test_the_engine_breaks_ties_within_one_batch_on_every_interval(
    order: tuple[Trade, ...], path: tuple[bool, int]
) -> None:
    e = engine(path)
    out = e.process(to_table(list(order), TRADE_SCHEMA))
    assert open_close(out.candles) == {i: (11.0, 11, 14.0, 14) for i in e.intervals}


@PATHS
def test_the_engine_breaks_ties_across_batches_on_every_interval(path: tuple[bool, int]) -> None:
    # Batch 1 holds the middle ids, batch 2 the lowest and the highest, all at one time:
    # the window's stored open and close must both be replaced by batch 2's.
    e = engine(path)
    e.process(to_table([trade(6, T0 + 5), trade(5, T0 + 5)], TRADE_SCHEMA))
    out = e.process(to_table([trade(9, T0 + 5), trade(2, T0 + 5)], TRADE_SCHEMA))
    assert open_close(out.candles) == {i: (2.0, 2, 9.0, 9) for i in e.intervals}


# Event times from a tiny set, so most trades tie with another; ids unique, any order.
tied_trades = st.lists(
    st.tuples(st.sampled_from([0, 1, 2, MIN, MIN + 1]), st.integers(1, 9).map(float)),
    min_size=1,
    max_size=30,
).flatmap(
    lambda rows: st.permutations(list(range(len(rows)))).map(
        lambda ids: [
            trade(100 + i, T0 + ts, price) for i, (ts, price) in zip(ids, rows, strict=True)
        ]
    )
)


@FOLDS
@settings(max_examples=60, deadline=None)
@given(tied_trades, st.integers(1, 4))
def test_rolled_up_partitions_equal_the_direct_first_and_last_trade(
    partial_candles: Fold, rollup_partials: Fold, trades: list[Trade], parts: int
) -> None:
    # Partials of disjoint partitions of the same trades (as independent workers would build
    # them), then one rollup: open and close are the first and last trade of all of them.
    partitions = [trades[i::parts] for i in range(parts)]
    partials = pl.concat([partial_candles(frame(p), MIN) for p in partitions if p])
    (row,) = rollup_partials(partials, 5 * MIN).iter_rows(named=True)
    first, last = first_and_last(trades)
    assert (row["open"], row["open_ts"], row["open_id"]) == (
        first.price, first.ts_event, first.trade_id,
    )  # fmt: skip
    assert (row["close"], row["close_ts"], row["close_id"]) == (
        last.price, last.ts_event, last.trade_id,
    )  # fmt: skip
    assert row["trade_count"] == len(trades)


@PATHS
@pytest.mark.parametrize(
    ("new", "expected"),
    [
        # Same event time as the stored trades, ids around them: both ends move.
        ([trade(9, T0 + 5), trade(2, T0 + 5)], (2.0, 2, 9.0, 9, 9.0, 2.0)),
        # Same time, a higher id only: the stored open stays, the close moves.
        ([trade(7, T0 + 5, 5.5)], (5.0, 5, 5.5, 7, 6.0, 5.0)),
        # Earlier time, a higher id: the open moves (time first), the stored close stays.
        ([trade(8, T0 + 4, 7.0)], (7.0, 8, 6.0, 6, 7.0, 5.0)),
    ],
)
def test_a_restored_window_keeps_breaking_ties_by_trade_id(
    new: list[Trade], expected: tuple[float, int, float, int, float, float], path: tuple[bool, int]
) -> None:
    # After a restart the stored 1m candle (trades 5 and 6, both at T0 + 5) comes back with
    # the event times of its first and last trades, and merges with new trades as if it had
    # never left memory.
    stored = engine(path).process(
        to_table([trade(5, T0 + 5), trade(6, T0 + 5, qty=2.0)], TRADE_SCHEMA)
    )
    minute = next(c for c in stored.candles if c.interval == "1m")
    e = engine(path)
    e.restore(stored.positions, [(minute, T0 + 5, T0 + 5)])
    out = e.process(to_table(new, TRADE_SCHEMA))
    (after,) = [c for c in out.candles if c.interval == "1m"]
    assert (
        after.open, after.first_trade_id, after.close, after.last_trade_id, after.high, after.low,
    ) == expected  # fmt: skip
    assert after.trade_count == 2 + len(new)
    assert after.volume == 3.0 + sum(t.qty for t in new)
    assert (
        after.quote_volume
        == after.taker_buy_quote_volume
        == 17.0 + sum(t.price * t.qty for t in new)
    )
    assert after.taker_buy_volume == after.volume and (after.revision, after.is_final) == (0, False)
