"""Differential tests of the native candle fold (native/src/candles.rs via
`processing.native_fold`) against the Python path, which stays the reference.

Two levels: the fold itself (`native_fold.partial_candles` / `rollup_partials` against the
Polars functions of `processing.candles`), and the engine on every path it has (Python rows,
Python on Polars, native on Polars, native rows) fed the same batches: the same candles of
every interval with the same `is_final` and `revision`, the same alerts, trades, late trades,
duplicates and positions. Sums are compared with a relative tolerance of 1e-12 and everything
else exactly: the native fold sums sequentially in `(ts_event, trade_id)` order (checked here
exactly against a plain-Python sum in that order), Polars sums pairwise, the row path in
arrival order, so they can differ in the last bits (docs/native.md).
"""

import itertools
import math
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketpipe.config import AlertSettings
from marketpipe.model.batch import CommitBatch
from marketpipe.model.errors import ConfigError
from marketpipe.model.intervals import INTERVAL_US
from marketpipe.model.records import Alert, Candle, Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.observability import native
from marketpipe.processing import candles, native_fold
from marketpipe.processing.alerts import AlertRules
from marketpipe.processing.engine import NATIVE_ROW_PATH_MAX, CandleEngine
from marketpipe.sources.replay import ReplayReader

MIN = 60_000_000
T0 = 1_723_161_600_000_000  # 2024-08-09 00:00 UTC, a minute (and day) boundary
SUMS = ("volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume")
CANDLE_SUMS = (*SUMS, "vwap")
REL = 1e-12
RECORDED = sorted((Path(__file__).parents[1] / "data" / "binance").glob("*.recv.gz"))

# The engine's paths: (native, row_path_max, native_row_fold_min).
PATHS = {
    "python-rows": (False, 10**9, 0),
    "python-polars": (False, 0, 0),
    "native-polars": (True, 0, 0),
    "native-rows": (True, 10**9, 0),  # the native fold on every row-path batch
}


pytestmark = pytest.mark.usefixtures("native_on")  # conftest.py: both paths, or fail


def frame(rows: list[tuple[str, str, int, int, float, float, bool]]) -> pl.DataFrame:
    """Trades as `partial_candles` takes them: (exchange, symbol, id, ts, price, qty, buy)."""
    return pl.DataFrame(
        {
            "exchange": [r[0] for r in rows],
            "symbol": [r[1] for r in rows],
            "trade_id": [r[2] for r in rows],
            "ts_event": [r[3] for r in rows],
            "price": [r[4] for r in rows],
            "qty": [r[5] for r in rows],
            "side": ["buy" if r[6] else "sell" for r in rows],
        },
        schema_overrides={"trade_id": pl.Int64, "ts_event": pl.Int64},
    )


def sequential_sums(
    rows: list[tuple[str, str, int, int, float, float, bool]], length: int
) -> dict[tuple[str, str, int], tuple[float, float, float, float]]:
    """The summation the native fold promises, computed independently: per window, plain
    `+=` over the trades sorted by (ts_event, trade_id)."""
    windows: dict[tuple[str, str, int], list[tuple[int, int, float, float, bool]]] = defaultdict(
        list
    )
    for ex, sym, tid, ts, p, q, buy in rows:
        windows[(ex, sym, ts - ts % length)].append((ts, tid, p, q, buy))
    out = {}
    for key, trades in windows.items():
        volume = quote = buy_volume = buy_quote = 0.0
        for _, _, p, q, buy in sorted(trades, key=lambda t: (t[0], t[1])):
            volume += q
            quote += p * q
            if buy:
                buy_volume += q
                buy_quote += p * q
        out[key] = (volume, quote, buy_volume, buy_quote)
    return out


def assert_same_partials(got: pl.DataFrame, want: pl.DataFrame) -> None:
    """Same columns, dtypes, rows and order; sums within REL. Windows whose first trades tie
    exactly on (ts_event, trade_id) may come in another order: Polars' multi-column sort is
    not stable, so the reference leaves their order open (the native fold keeps arrival)."""
    assert got.schema == want.schema
    first = ["open_ts", "open_id"]
    assert got.select(first).equals(want.select(first))  # the order, up to exact ties
    key = ["exchange", "symbol", "open_time"]
    got, want = got.sort(key), want.sort(key)
    exact = [c for c in got.columns if c not in SUMS]
    assert got.select(exact).equals(want.select(exact))
    for column in SUMS:
        for a, b in zip(got[column], want[column], strict=True):
            assert math.isclose(a, b, rel_tol=REL), (column, a, b)


# Trades of two exchanges and three symbols, event times clustered on minute boundaries (so
# windows split exactly at ts % 60e6 == 0 and many trades tie), ids unique per symbol but
# shared across symbols, prices on a tick grid (ties in high and low).
symbols = st.sampled_from(
    [("binance", "BTC-USDT"), ("binance", "ETH-USDT"), ("kraken", "BTC-USDT")]
)
offsets = st.sampled_from([0, 1, MIN - 1, MIN, MIN + 1, 5 * MIN, 60 * MIN - 1, 61 * MIN])
trade_rows = st.lists(
    st.tuples(
        symbols,
        st.integers(0, 30),
        st.one_of(offsets, st.integers(0, 3 * 3600 * 1_000_000)),
        st.integers(1, 400).map(lambda p: p / 4),
        st.floats(0.0001, 50, allow_nan=False),
        st.booleans(),
    ),
    min_size=1,
    max_size=120,
    unique_by=lambda r: (r[0], r[1]),
).map(lambda rows: [(e, s, i, T0 + ts, p, q, b) for (e, s), i, ts, p, q, b in rows])


@settings(max_examples=120, deadline=None)
@given(trade_rows, st.sampled_from([MIN, 5 * MIN, 3600 * 1_000_000]))
def test_the_native_fold_equals_polars_partial_candles_and_sums_in_event_time_order(
    rows: list[tuple[str, str, int, int, float, float, bool]], length: int
) -> None:
    trades = frame(rows)
    got = native_fold.partial_candles(trades, length)
    assert_same_partials(got, candles.partial_candles(trades, length))
    want = sequential_sums(rows, length)
    for row in got.iter_rows(named=True):
        sums = tuple(row[c] for c in SUMS)
        assert sums == want[(row["exchange"], row["symbol"], row["open_time"])]  # bit for bit


@settings(max_examples=80, deadline=None)
@given(trade_rows, st.data())
def test_the_native_fold_does_not_depend_on_arrival_order(
    rows: list[tuple[str, str, int, int, float, float, bool]], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(rows))
    a = native_fold.partial_candles(frame(rows), MIN).sort("exchange", "symbol", "open_time")
    b = native_fold.partial_candles(frame(shuffled), MIN).sort("exchange", "symbol", "open_time")
    assert a.equals(b)  # sums too, exactly


@settings(max_examples=80, deadline=None)
@given(trade_rows, st.sampled_from([5, 15, 60, 240, 1440]), st.integers(1, 4))
def test_the_native_rollup_equals_polars_rollup_partials(
    rows: list[tuple[str, str, int, int, float, float, bool]], minutes: int, parts: int
) -> None:
    # Partials of disjoint parts of the trades (as separate batches would give), stacked.
    partials = pl.concat(
        [
            candles.partial_candles(frame(rows[i::parts]), MIN)
            for i in range(parts)
            if rows[i::parts]
        ]
    )
    got = native_fold.rollup_partials(partials, minutes * MIN)
    want = candles.rollup_partials(partials, minutes * MIN)
    assert got.schema == want.schema
    exact = [c for c in got.columns if c not in SUMS]
    assert got.select(exact).equals(want.select(exact))  # same order: first appearance
    for column in SUMS:
        for a, b in zip(got[column], want[column], strict=True):
            assert math.isclose(a, b, rel_tol=REL)


ROWS = [
    ("binance", "ETH-USDT", 9, T0 + MIN, 2.5, 2.0, True),
    ("binance", "BTC-USDT", 4, T0 + 3, 61000.0, 0.5, False),
    ("binance", "BTC-USDT", 3, T0 + 3, 61001.0, 0.25, True),
]


def layouts() -> Iterator[tuple[str, object]]:
    df = frame(ROWS).with_columns(ts_recv=pl.col("ts_event"))  # an extra column, ignored
    table = df.to_arrow()
    yield "polars (string_view)", df
    yield "pyarrow large_string", table
    yield (
        "pyarrow string",
        table.cast(
            pa.schema(
                [
                    f.with_type(pa.string()) if pa.types.is_large_string(f.type) else f
                    for f in table.schema
                ]
            )
        ),
    )
    yield (
        "TRADE_SCHEMA, timestamp[us]",
        to_table(
            [Trade(e, s, i, p, q, "buy" if b else "sell", ts, ts) for e, s, i, ts, p, q, b in ROWS],  # type: ignore[arg-type]
            TRADE_SCHEMA,
        ),
    )
    yield "a record batch", table.to_batches()[0]
    yield "chunks", pa.concat_tables([table.slice(0, 1), table.slice(1, 2)])


@pytest.mark.parametrize(("name", "data"), list(layouts()), ids=[n for n, _ in layouts()])
def test_every_arrow_layout_folds_to_the_same_candles(name: str, data: object) -> None:
    want = candles.partial_candles(frame(ROWS), MIN)
    got = native_fold.partial_candles(data, MIN)  # type: ignore[arg-type]
    assert got.equals(want), name
    assert got["symbol"].to_list() == ["BTC-USDT", "ETH-USDT"]  # by first trade (ts, id)
    assert (got["open_id"][0], got["open"][0], got["close_id"][0]) == (3, 61001.0, 4)


def test_a_bare_arrow_array_capsule_is_taken_too() -> None:
    # The extension's own batches speak only `__arrow_c_array__` (pyarrow's speak the stream
    # protocol too): a native fold's output rolls up natively without a copy through pyarrow.
    minutes = native_fold.extension().partial_candles(frame(ROWS), MIN)
    assert not hasattr(minutes, "__arrow_c_stream__")
    got = native_fold.rollup_partials(minutes, 5 * MIN)
    assert got.equals(candles.rollup_partials(candles.partial_candles(frame(ROWS), MIN), 5 * MIN))


def test_bad_input_is_refused_with_what_is_wrong() -> None:
    trades = frame(ROWS)
    with pytest.raises(ValueError, match='no column "side"'):
        native_fold.partial_candles(trades.drop("side"), MIN)
    with pytest.raises(ValueError, match='"price" holds nulls'):
        native_fold.partial_candles(
            trades.with_columns(price=pl.when(pl.col("trade_id") == 3).then(pl.col("price"))), MIN
        )
    with pytest.raises(ValueError, match='"trade_id" is Float64'):
        native_fold.partial_candles(trades.with_columns(pl.col("trade_id") * 1.0), MIN)
    with pytest.raises(ValueError, match="must be positive"):
        native_fold.partial_candles(trades, 0)
    with pytest.raises(ValueError, match="multiple of 60000000"):
        native_fold.fold_candles(trades, [MIN, 90_000_000])
    with pytest.raises(TypeError, match="expected Arrow data"):
        native_fold.partial_candles([1, 2], MIN)  # type: ignore[arg-type]


def test_fold_candles_stacks_every_interval_as_the_separate_calls_give_them() -> None:
    trades = frame(ROWS)
    lengths = [MIN, 5 * MIN, 1440 * MIN]
    stacked = pl.from_arrow(native_fold.fold_candles(trades, lengths))
    assert isinstance(stacked, pl.DataFrame)
    minutes = native_fold.partial_candles(trades, MIN)
    for length in lengths:
        part = stacked.filter(pl.col("length_us") == length).drop("length_us")
        want = minutes if length == MIN else native_fold.rollup_partials(minutes, length)
        assert part.equals(want)


# ---- the engine on every path ------------------------------------------------------------


def engines(grace_us: int, lateness_us: int, **alerts: Any) -> dict[str, CandleEngine]:
    return {
        name: CandleEngine(
            AlertRules(AlertSettings(**alerts)),
            grace_us=grace_us,
            allowed_lateness_us=lateness_us,
            native=use_native,
            row_path_max=row_max,
            native_row_fold_min=fold_min,
        )
        for name, (use_native, row_max, fold_min) in PATHS.items()
    }


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL)


def assert_same_candles(got: list[Candle], want: list[Candle], ordered: bool) -> None:
    def key(c: Candle) -> tuple[str, str, str, int]:
        return (c.exchange, c.symbol, c.interval, c.open_time)

    if ordered:
        assert [key(c) for c in got] == [key(c) for c in want]
    by_key = {key(c): c for c in want}
    assert len(got) == len(want) == len(by_key)
    for c in got:
        a, b = msgspec.structs.asdict(c), msgspec.structs.asdict(by_key[key(c)])
        for name in CANDLE_SUMS:
            assert _close(a.pop(name), b.pop(name)), (name, c, by_key[key(c)])
        assert a == b


def assert_same_alerts(got: list[Alert], want: list[Alert], ordered: bool) -> None:
    if not ordered:
        got, want = sorted(got, key=lambda a: a.alert_id), sorted(want, key=lambda a: a.alert_id)
    assert [a.alert_id for a in got] == [a.alert_id for a in want]
    for x, y in zip(got, want, strict=True):
        a, b = msgspec.structs.asdict(x), msgspec.structs.asdict(y)
        for name in ("value", "threshold"):  # quote volumes and their trailing means
            assert _close(a.pop(name), b.pop(name)), (x, y)
        assert a == b


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by(
        [("exchange", "ascending"), ("symbol", "ascending"), ("trade_id", "ascending")]
    )


def assert_same_batch(got: CommitBatch, want: CommitBatch, ordered: bool) -> None:
    """`ordered`: the same order too (native and Python on Polars group alike; the row path
    groups by arrival, so across row and Polars paths the order of candles may differ)."""
    assert_same_candles(got.candles, want.candles, ordered)
    assert_same_alerts(got.alerts, want.alerts, ordered)
    assert _sorted(got.trades).equals(_sorted(want.trades))
    assert _sorted(got.late_trades).equals(_sorted(want.late_trades))
    assert got.trades.schema == want.trades.schema == TRADE_SCHEMA
    assert (got.duplicates, got.positions) == (want.duplicates, want.positions)


def run_all(es: dict[str, CandleEngine], batches: list[pa.Table]) -> dict[str, list[CommitBatch]]:
    out: dict[str, list[CommitBatch]] = {name: [] for name in es}
    for batch in batches:
        for name, e in es.items():
            out[name].append(e.process(batch))
    for name, e in es.items():
        out[name].append(e.flush())
    return out


def assert_paths_agree(outs: dict[str, list[CommitBatch]], es: dict[str, CandleEngine]) -> None:
    reference = outs["python-polars"]
    for name, batches in outs.items():
        ordered = name == "native-polars"  # the same grouping as the reference
        for got, want in zip(batches, reference, strict=True):
            assert_same_batch(got, want, ordered)
        assert es[name].watermarks() == es["python-polars"].watermarks()
        assert es[name].positions() == es["python-polars"].positions()


# Engine input: ids per symbol in their own range (so no two windows' first trades tie exactly
# across symbols: see assert_same_partials), resent trades (duplicates), any order, any
# batching, grace and lateness small enough that windows go final, get revised and drop late
# trades; whale and spike thresholds low enough to fire.
@st.composite
def engine_input(draw: st.DrawFn) -> tuple[list[pa.Table], int, int]:
    rows = draw(trade_rows)
    base = {
        ("binance", "BTC-USDT"): 10**6,
        ("binance", "ETH-USDT"): 2 * 10**6,
        ("kraken", "BTC-USDT"): 3 * 10**6,
    }
    trades = [
        Trade(e, s, base[(e, s)] + i, p, q, "buy" if b else "sell", ts, ts)  # type: ignore[arg-type]
        for e, s, i, ts, p, q, b in rows
    ]
    trades += draw(st.lists(st.sampled_from(trades), max_size=15))  # delivered again
    trades = draw(st.permutations(trades))
    cuts = sorted(draw(st.lists(st.integers(0, len(trades)), max_size=6)))
    bounds = [0, *cuts, len(trades)]
    batches = [to_table(trades[a:b], TRADE_SCHEMA) for a, b in itertools.pairwise(bounds) if a < b]
    grace = draw(st.sampled_from([0, 2_000_000, 5 * MIN]))
    lateness = draw(st.sampled_from([0, MIN, 3600 * 1_000_000]))
    return batches, grace, lateness


@settings(max_examples=150, deadline=None)
@given(engine_input())
def test_every_engine_path_gives_the_same_batches(case: tuple[list[pa.Table], int, int]) -> None:
    batches, grace, lateness = case
    es = engines(
        grace, lateness, whale_notional=2_000, volume_spike_quote=5_000, price_spike_pct=0.01
    )
    outs = run_all(es, batches)
    assert_paths_agree(outs, es)
    # And a later watermark (the wall clock) finalizes and evicts alike on every path.
    later = {
        name: e.advance_watermark("binance", T0 + 10 * 3600 * 1_000_000) for name, e in es.items()
    }
    for name, got in later.items():
        assert_same_batch(got, later["python-polars"], ordered=name == "native-polars")


def tie_engines() -> dict[str, CandleEngine]:
    return engines(3600 * 1_000_000, 3600 * 1_000_000)  # nothing final: the merge under test


def trade(trade_id: int, ts: int, price: float | None = None, symbol: str = "BTC-USDT") -> Trade:
    p = float(trade_id) if price is None else price  # a wrong pick shows in the price
    return Trade("binance", symbol, trade_id, p, 1.0, "buy", ts, ts)


def latest(out: list[CommitBatch]) -> dict[tuple[str, int], Candle]:
    return {(c.interval, c.open_time): c for b in out for c in b.candles}


def test_ties_on_event_time_are_broken_by_trade_id_across_batches_on_every_path() -> None:
    es = tie_engines()
    first = [trade(6, T0 + 5), trade(5, T0 + 5)]
    second = [trade(9, T0 + 5), trade(2, T0 + 5), trade(7, T0 + 5)]
    batches = [to_table(first, TRADE_SCHEMA), to_table(second, TRADE_SCHEMA)]
    outs = run_all(es, batches)
    assert_paths_agree(outs, es)
    for out in outs.values():
        for c in latest(out).values():
            assert (c.open, c.first_trade_id, c.close, c.last_trade_id) == (2.0, 2, 9.0, 9)
            assert (c.trade_count, c.high, c.low) == (5, 9.0, 2.0)


def test_equal_prices_keep_open_close_and_extremes_by_event_time_and_id() -> None:
    es = tie_engines()
    trades = [trade(3, T0 + 9, 7.0), trade(1, T0 + 9, 7.0), trade(2, T0 + 1, 7.0)]
    outs = run_all(es, [to_table(trades, TRADE_SCHEMA)])
    assert_paths_agree(outs, es)
    for out in outs.values():
        c = latest(out)[("1m", T0)]
        assert (c.open, c.close, c.high, c.low) == (7.0, 7.0, 7.0, 7.0)
        assert (c.first_trade_id, c.last_trade_id) == (2, 3)


@pytest.mark.parametrize(
    "boundary", [MIN, 5 * MIN, 60 * MIN, 1440 * MIN], ids=["1m", "5m", "1h", "1d"]
)
def test_a_trade_exactly_on_a_window_boundary_opens_the_next_window(boundary: int) -> None:
    es = tie_engines()
    before, on = trade(1, T0 + boundary - 1), trade(2, T0 + boundary)
    outs = run_all(es, [to_table([on, before], TRADE_SCHEMA)])
    assert_paths_agree(outs, es)
    for out in outs.values():
        built = latest(out)
        for interval, length in INTERVAL_US.items():
            if boundary % length == 0:  # the boundary splits this interval's windows
                assert built[(interval, T0 + boundary - length)].last_trade_id == 1
                assert built[(interval, T0 + boundary)].first_trade_id == 2
            else:  # both trades in the one window around it
                c = built[(interval, T0 + boundary - boundary % length)]
                assert (c.first_trade_id, c.last_trade_id, c.trade_count) == (1, 2, 2)


# ---- recorded frames and a million synthetic trades --------------------------------------


@pytest.mark.parametrize("size", [50, 500, 5000, 10**9], ids=lambda s: f"batches-of-{s}")
def test_recorded_binance_frames_give_the_same_outputs_on_both_paths(size: int) -> None:
    trades = pa.concat_tables(chunk.trades for chunk in ReplayReader(RECORDED, native=False))
    assert trades.num_rows == 19_904  # tests/data/README.md
    batches = [trades.slice(i, size) for i in range(0, trades.num_rows, size)]
    es = {"python": _recorded_engine(native=False), "native": _recorded_engine(native=True)}
    outs = run_all(es, batches)
    for got, want in zip(outs["native"], outs["python"], strict=True):
        assert_same_batch(got, want, ordered=size > NATIVE_ROW_PATH_MAX)  # both on Polars
    final = {
        c.open_time: c
        for b in outs["native"]
        for c in b.candles
        if c.interval == "1m" and c.is_final
    }
    # The facts tests/data/README.md states, independent of both paths.
    assert len(final) == 12
    ordered = sorted(final.values(), key=lambda c: c.open_time)
    assert (ordered[0].open, ordered[-1].close) == (61837.63, 61602.02)
    alerts = [a for b in outs["native"] for a in b.alerts]
    whales = [a for a in alerts if a.kind == "whale_trade"]
    assert [msgspec.json.decode(a.details)["trade_id"] for a in whales] == [3735696283]
    big = sorted(c.open_time for c in final.values() if c.quote_volume >= 1_000_000)
    assert len(big) == 8
    spikes = sorted(a.ts for a in alerts if a.kind == "volume_spike")
    assert spikes == big


def _recorded_engine(native: bool) -> CandleEngine:
    return CandleEngine(
        AlertRules(AlertSettings()),
        grace_us=2_000_000,
        allowed_lateness_us=3600 * 1_000_000,
        native=native,
    )


def million_trades(seed: int = 14) -> pa.Table:
    """1M trades of 20 symbols over about 2 event hours: ids consecutive per symbol, event
    times in order but for neighbours swapped in 1 % of places, 0.5 % sent twice."""
    rng = np.random.default_rng(seed)
    n = 1_000_000
    symbol = rng.integers(0, 20, n)
    ts = T0 + np.sort(rng.integers(0, 2 * 3600 * 1_000_000, n))
    trade_id = np.zeros(n, dtype=np.int64)
    for s in range(20):
        at = np.flatnonzero(symbol == s)
        trade_id[at] = (s + 1) * 10**9 + np.arange(at.size)
    swap = 2 * np.flatnonzero(rng.random(n // 2) < 0.02)  # pairs (2k, 2k + 1): disjoint
    for column in (symbol, ts, trade_id):
        column[swap], column[swap + 1] = column[swap + 1].copy(), column[swap].copy()
    again = rng.choice(n, n // 200, replace=False)
    order = np.sort(np.concatenate([np.arange(n), again]))
    price = (100 + 50 * symbol + rng.random(n).round(2))[order]
    qty = rng.exponential(20, n).round(4)[order] + 0.0001
    names = np.array([f"S{s:02d}-USDT" for s in range(20)])
    return pa.table(
        {
            "exchange": pa.array(["binance"] * order.size),
            "symbol": pa.array(names[symbol[order]]),
            "trade_id": pa.array(trade_id[order]),
            "price": pa.array(price),
            "qty": pa.array(qty),
            "side": pa.array(np.where(rng.random(n) < 0.5, "buy", "sell")[order]),
            "ts_event": pa.array(ts[order], pa.timestamp("us", tz="UTC")),
            "ts_recv": pa.array(ts[order], pa.timestamp("us", tz="UTC")),
        }
    ).cast(TRADE_SCHEMA)


def test_a_million_synthetic_trades_give_the_same_outputs_on_both_paths() -> None:
    trades = million_trades()
    batches = [trades.slice(i, 200_000) for i in range(0, trades.num_rows, 200_000)]
    es = {"python": _recorded_engine(native=False), "native": _recorded_engine(native=True)}
    outs = run_all(es, batches)
    for got, want in zip(outs["native"], outs["python"], strict=True):
        assert_same_batch(got, want, ordered=True)
    stored = sum(b.trades.num_rows for b in outs["native"])
    duplicates = sum(b.duplicates for b in outs["native"])
    assert (stored, duplicates) == (1_000_000, 5_000)
    final = [c for b in outs["native"] for c in b.candles if c.interval == "1d"]
    assert sum(c.trade_count for c in final if c.is_final) == 1_000_000  # flush: all final


# ---- choosing the path -------------------------------------------------------------------


def test_the_engine_takes_the_native_path_when_active_and_python_when_switched_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rules = AlertRules(AlertSettings())
    assert CandleEngine(rules, grace_us=0, allowed_lateness_us=0).native
    monkeypatch.setenv(native.ENV, "0")
    native.reset()
    assert not CandleEngine(rules, grace_us=0, allowed_lateness_us=0).native
    with pytest.raises(ConfigError, match="native candle fold was asked for: switched off"):
        CandleEngine(rules, grace_us=0, allowed_lateness_us=0, native=True)
