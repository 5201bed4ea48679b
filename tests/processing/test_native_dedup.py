"""Differential tests of the native dedup (native/src/dedup.rs via `processing.native_dedup`)
against the Python path, which stays the reference.

Two levels: `native_dedup.first_rows` against an independent plain-Python scan (first row of
each id per (exchange, symbol), symbols in order of first appearance), and the engine on its
Polars path, native and Python, fed the same batches: the same kept trades in the same order,
late trades, duplicates and positions (ledger ranges, gaps found, trades seen), exactly.
"""

import itertools
import types

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketpipe.config import AlertSettings
from marketpipe.model.batch import CommitBatch
from marketpipe.model.records import Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.model.venues import KEY_FLOOR
from marketpipe.observability import native
from marketpipe.processing import native_dedup
from marketpipe.processing.alerts import AlertRules
from marketpipe.processing.engine import CandleEngine

T0 = 1_723_161_600_000_000  # 2024-08-09 00:00 UTC
MIN = 60_000_000
# (exchange, symbol) -> id base: two sequential-id venues and a keyed one (ids above KEY_FLOOR).
PAIRS = {
    ("binance", "BTC-USDT"): 1_000,
    ("binance", "ETH-USDT"): 2_000,
    ("kraken", "BTC-USDT"): 3_000,
    ("finnhub", "AAPL"): KEY_FLOOR + 5_000,
}
NAMES = sorted(PAIRS)


pytestmark = pytest.mark.usefixtures("native_on")  # conftest.py: both paths, or fail


def table(rows: list[tuple[int, int, int]]) -> pa.Table:
    """Trades from (pair index into NAMES, id offset, second): price tells rows apart."""
    trades = []
    for n, (pair, offset, second) in enumerate(rows):
        exchange, symbol = NAMES[pair]
        ts = T0 + second * 1_000_000
        trades.append(
            Trade(exchange, symbol, PAIRS[NAMES[pair]] + offset, 100.0 + n, 1.0, "buy", ts, ts)  # type: ignore[arg-type]
        )
    return to_table(trades, TRADE_SCHEMA)


def engine(use_native: bool) -> CandleEngine:
    return CandleEngine(
        AlertRules(AlertSettings()),
        grace_us=0,
        allowed_lateness_us=MIN,
        native=use_native,
        row_path_max=0,  # the Polars path, where `_dedup` runs, for every non-empty batch
    )


def run(use_native: bool, batches: list[pa.Table]) -> list[CommitBatch]:
    e = engine(use_native)
    outs = [e.process(b) for b in batches]
    outs.append(e.flush())
    return outs


def assert_same(got: list[CommitBatch], want: list[CommitBatch]) -> None:
    for g, w in zip(got, want, strict=True):
        assert g.trades.equals(w.trades)  # same rows, same order
        assert g.late_trades.equals(w.late_trades)
        assert (g.duplicates, g.positions) == (w.duplicates, w.positions)
        assert g.candles == w.candles


def scan(rows: list[tuple[str, str, int]]) -> tuple[list[int], list[tuple[str, str, int]]]:
    """The reference for `first_rows`: kept rows pair after pair, and (pair, delivered)."""
    kept: dict[tuple[str, str], list[int]] = {}
    seen: dict[tuple[str, str], set[int]] = {}
    delivered: dict[tuple[str, str], int] = {}
    for i, (exchange, symbol, trade_id) in enumerate(rows):
        key = (exchange, symbol)
        delivered[key] = delivered.get(key, 0) + 1
        if trade_id not in seen.setdefault(key, set()):
            seen[key].add(trade_id)
            kept.setdefault(key, []).append(i)
    return [i for key in kept for i in kept[key]], [(*k, n) for k, n in delivered.items()]


# ---- first_rows ---------------------------------------------------------------------------

ids_rows = st.lists(st.tuples(st.sampled_from(NAMES), st.integers(0, 12)), min_size=1, max_size=80)


@settings(max_examples=200, deadline=None)
@given(ids_rows, st.booleans())
def test_first_rows_matches_a_plain_scan(
    rows: list[tuple[tuple[str, str], int]], polars: bool
) -> None:
    flat = [(e, s, PAIRS[(e, s)] + k) for (e, s), k in rows]
    data = pa.table(
        {
            "exchange": [r[0] for r in flat],
            "symbol": [r[1] for r in flat],
            "trade_id": pa.array([r[2] for r in flat], pa.int64()),
            "ts_event": pa.array([T0] * len(flat), pa.int64()),
            "price": [1.0] * len(flat),
            "qty": [1.0] * len(flat),
            "side": ["buy"] * len(flat),
        }
    )
    found = native_dedup.first_rows(pl.from_arrow(data) if polars else data)
    want_rows, want_pairs = scan(flat)
    assert found.rows.tolist() == want_rows
    assert [(p.exchange, p.symbol, p.delivered) for p in found.pairs] == want_pairs
    starts = [p.start for p in found.pairs]
    ends = [p.end for p in found.pairs]
    assert starts == [0, *ends[:-1]] and ends[-1] == len(want_rows)


def test_first_rows_keeps_the_first_of_a_falling_repeat() -> None:
    # Rising ids, then one repeated below the top, then a new one below it: the native scan
    # switches from "above the top" to a set there (dedup.rs).
    found = native_dedup.first_rows(table([(0, 1, 0), (0, 2, 0), (0, 3, 0), (0, 2, 0), (0, 0, 0)]))
    assert found.rows.tolist() == [0, 1, 2, 4]
    assert [(p.start, p.end, p.delivered) for p in found.pairs] == [(0, 4, 5)]


# ---- the engine, native against Python ----------------------------------------------------

engine_rows = st.lists(
    st.tuples(st.integers(0, len(NAMES) - 1), st.integers(0, 40), st.integers(0, 600)),
    min_size=1,
    max_size=120,
)


@st.composite
def batched(draw: st.DrawFn) -> list[pa.Table]:
    """Random ids with repeats within and across batches, cut into batches anywhere."""
    rows = draw(engine_rows)
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(rows) - 1)), max_size=5)))
    bounds = [0, *[c for c in cuts if c < len(rows)], len(rows)]
    return [table(rows[a:b]) for a, b in itertools.pairwise(bounds) if b > a]


@settings(max_examples=150, deadline=None)
@given(batched())
def test_engine_dedup_native_matches_python(batches: list[pa.Table]) -> None:
    assert_same(run(True, batches), run(False, batches))


def position(outs: list[CommitBatch], exchange: str, symbol: str) -> tuple[object, ...]:
    p = [p for out in outs for p in out.positions if (p.exchange, p.symbol) == (exchange, symbol)][
        -1
    ]
    return (p.id_ranges, p.gaps_found, p.trades_seen, p.duplicates)


@pytest.mark.parametrize("use_native", [True, False])
def test_an_id_equal_to_a_range_end_is_a_duplicate(use_native: bool) -> None:
    # Ids 10..12 seen; then 12 (the range's end) again, 9 and 13 (just outside, adjacent) new.
    outs = run(use_native, [table([(0, 10, 0), (0, 11, 1), (0, 12, 2)]),
                            table([(0, 12, 3), (0, 13, 4), (0, 9, 5), (0, 12, 6)])])  # fmt: skip
    base = PAIRS[NAMES[0]]
    assert outs[1].duplicates == 2
    assert outs[1].trades.column("trade_id").to_pylist() == [base + 13, base + 9]
    assert position(outs, *NAMES[0]) == ([(base + 9, base + 13)], 0, 5, 2)


@pytest.mark.parametrize("use_native", [True, False])
def test_adjacent_ranges_merge_and_a_hole_is_a_gap(use_native: bool) -> None:
    # 1..2 and 5..6 leave the hole 3..4 (a gap); 3..4 then fill it: one range, gap filled.
    outs = run(use_native, [table([(0, 1, 0), (0, 2, 0), (0, 5, 1), (0, 6, 1)]),
                            table([(0, 4, 2), (0, 3, 2), (0, 4, 3)])])  # fmt: skip
    base = PAIRS[NAMES[0]]
    assert position(outs[:1], *NAMES[0]) == ([(base + 1, base + 2), (base + 5, base + 6)], 1, 4, 0)
    assert position(outs, *NAMES[0]) == ([(base + 1, base + 6)], 1, 6, 1)
    assert outs[1].trades.column("trade_id").to_pylist() == [base + 4, base + 3]


@pytest.mark.parametrize("use_native", [True, False])
def test_a_keyed_venue_drops_repeats_within_and_across_batches(use_native: bool) -> None:
    finnhub = NAMES.index(("finnhub", "AAPL"))
    outs = run(use_native, [table([(finnhub, 7, 0), (finnhub, 3, 1), (finnhub, 7, 2)]),
                            table([(finnhub, 3, 3), (finnhub, 8, 4)])])  # fmt: skip
    base = PAIRS[("finnhub", "AAPL")]
    assert [o.duplicates for o in outs[:2]] == [1, 1]
    assert outs[1].trades.column("trade_id").to_pylist() == [base + 8]
    assert position(outs, "finnhub", "AAPL") == ([], 0, 3, 2)


def test_a_batch_of_only_duplicates_keeps_nothing_on_both_paths() -> None:
    batches = [table([(1, 1, 0), (2, 1, 0)]), table([(2, 1, 1), (1, 1, 1), (1, 1, 2)])]
    native_outs, python_outs = run(True, batches), run(False, batches)
    assert_same(native_outs, python_outs)
    assert native_outs[1].trades.num_rows == 0 and native_outs[1].duplicates == 3


def test_the_engine_takes_the_native_dedup_only_on_the_native_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real = native_dedup.first_rows

    def counted(trades: object) -> native_dedup.FirstRows:
        calls.append(1)
        return real(trades)  # type: ignore[arg-type]

    monkeypatch.setattr(native_dedup, "first_rows", counted)
    batch = table([(0, 1, 0), (0, 1, 0)])
    run(False, [batch])
    assert calls == []
    run(True, [batch])
    assert calls == [1]
    assert np.array_equal(real(batch).rows, [0])


def test_a_build_without_the_dedup_dedups_on_the_python_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A build from before dedup.rs: it still folds natively; its engine dedups in Python.
    old = types.SimpleNamespace(
        **{name: getattr(native.extension(), name) for name in native._REQUIRED}
    )
    monkeypatch.setattr(native, "extension", lambda: old)
    assert not native_dedup.available()
    stale = engine(True)
    assert (stale.native, stale.native_dedup) == (True, False)
    batches = [table([(0, 1, 0), (0, 1, 0), (3, 2, 0)])]
    outs = [stale.process(b) for b in batches]
    assert_same(outs, run(False, batches)[:1])
    assert engine(False).native_dedup is False
