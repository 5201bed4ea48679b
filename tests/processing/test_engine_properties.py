"""Hypothesis properties of DESIGN.md's semantics, each checked against a direct computation
that shares no code with the engine: the candle monoid (associative, commutative, equal to a
direct computation, rollups = merges of minutes), dedup, the watermark and finality, and late
revisions within and beyond allowed lateness."""

import dataclasses
import math
from collections import defaultdict

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from marketpipe.config import AlertSettings
from marketpipe.model.records import Candle, Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.processing.alerts import AlertRules
from marketpipe.processing.candles import CandleAcc, partial_candles, rollup_partials
from marketpipe.processing.engine import CandleEngine

MIN = 60_000_000
T0 = 1_723_161_600_000_000  # 2024-08-09 00:00 UTC
PROPS = settings(max_examples=80, deadline=None)

# (ts offset µs, price, qty, taker buy?) — prices on a tick grid so ties in price happen too.
raw_trades = st.lists(
    st.tuples(
        st.integers(0, 12 * MIN),
        st.integers(1, 200).map(lambda p: p / 4),
        st.integers(1, 10_000).map(lambda q: q / 1000),
        st.booleans(),
    ),
    min_size=1,
    max_size=80,
)


def make(raw: list[tuple[int, float, float, bool]], first_id: int = 1) -> list[Trade]:
    return [
        Trade("binance", "BTC-USDT", first_id + i, p, q, "buy" if b else "sell", T0 + ts, T0 + ts)
        for i, (ts, p, q, b) in enumerate(raw)
    ]


def frame(trades: list[Trade]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "exchange": [t.exchange for t in trades],
            "symbol": [t.symbol for t in trades],
            "trade_id": [t.trade_id for t in trades],
            "price": [t.price for t in trades],
            "qty": [t.qty for t in trades],
            "side": [t.side for t in trades],
            "ts_event": [t.ts_event for t in trades],
        }
    )


def direct(trades: list[Trade], length: int) -> dict[int, tuple[object, ...]]:
    """Candles by plain Python: per window, sort by (ts_event, trade_id)."""
    windows: dict[int, list[Trade]] = defaultdict(list)
    for t in trades:
        windows[t.ts_event - t.ts_event % length].append(t)
    out = {}
    for open_time, ts in windows.items():
        ts.sort(key=lambda t: (t.ts_event, t.trade_id))
        out[open_time] = (
            ts[0].price, max(t.price for t in ts), min(t.price for t in ts), ts[-1].price,
            len(ts), ts[0].trade_id, ts[-1].trade_id, sum(t.qty for t in ts),
            sum(t.price * t.qty for t in ts), sum(t.qty for t in ts if t.side == "buy"),
        )  # fmt: skip
    return out


def as_tuple(acc: CandleAcc) -> tuple[object, ...]:
    return (
        acc.open, acc.high, acc.low, acc.close, acc.trade_count, acc.open_key[1],
        acc.close_key[1], acc.volume, acc.quote_volume, acc.taker_buy_volume,
    )  # fmt: skip


def same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    exact = a[:7] == b[:7]
    sums = all(
        math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)  # type: ignore[arg-type]
        for x, y in zip(a[7:], b[7:], strict=True)
    )
    return exact and sums


def acc_of(trades: list[Trade]) -> CandleAcc:
    """One partial candle of trades that all fall in one window."""
    (row,) = partial_candles(frame(trades), 10**15).iter_rows(named=True)
    return CandleAcc.from_partial(row)


def merged(a: CandleAcc, b: CandleAcc) -> CandleAcc:
    out = dataclasses.replace(a)
    out.merge(b)
    return out


# ---- the candle monoid -------------------------------------------------------------------


@PROPS
@given(raw_trades, st.data())
def test_merge_is_associative_commutative_and_equals_the_direct_candle(
    raw: list[tuple[int, float, float, bool]], data: st.DataObject
) -> None:
    trades = make(raw)
    cut1 = data.draw(st.integers(0, len(trades)))
    cut2 = data.draw(st.integers(cut1, len(trades)))
    parts = [trades[:cut1], trades[cut1:cut2], trades[cut2:]]
    parts = [p for p in parts if p]
    accs = [acc_of(p) for p in parts]
    want = next(iter(direct(trades, 10**15).values()))
    left = accs[0]
    for acc in accs[1:]:
        left = merged(left, acc)
    right = accs[-1]
    for acc in reversed(accs[:-1]):
        right = merged(acc, right)
    assert same(as_tuple(left), want)  # (a+b)+c = direct
    assert same(as_tuple(right), want)  # a+(b+c) = direct
    if len(accs) >= 2:
        assert same(as_tuple(merged(accs[1], accs[0])), as_tuple(merged(accs[0], accs[1])))


@PROPS
@given(raw_trades, st.sampled_from([5, 15, 60]))
def test_rollups_are_merges_of_minutes_and_equal_direct_candles(
    raw: list[tuple[int, float, float, bool]], minutes: int
) -> None:
    trades = make(raw)
    length = minutes * MIN
    rolled = rollup_partials(partial_candles(frame(trades), MIN), length)
    want = direct(trades, length)
    got = {row["open_time"]: CandleAcc.from_partial(row) for row in rolled.iter_rows(named=True)}
    assert got.keys() == want.keys()
    for open_time, acc in got.items():
        assert same(as_tuple(acc), want[open_time])


# ---- the engine: dedup, watermark and finality, late revisions ---------------------------


def engine(grace_us: int, lateness_us: int) -> CandleEngine:
    return CandleEngine(
        AlertRules(AlertSettings()), grace_us=grace_us, allowed_lateness_us=lateness_us
    )


def candle_tuple(c: Candle) -> tuple[object, ...]:
    return (
        c.open, c.high, c.low, c.close, c.trade_count, c.first_trade_id, c.last_trade_id,
        c.volume, c.quote_volume, c.taker_buy_volume,
    )  # fmt: skip


@PROPS
@given(raw_trades, st.data())
def test_trades_delivered_many_times_count_once(
    raw: list[tuple[int, float, float, bool]], data: st.DataObject
) -> None:
    trades = make(raw)
    repeats = data.draw(st.lists(st.sampled_from(trades), max_size=40))
    stream = trades + repeats
    stream = data.draw(st.permutations(stream))
    size = data.draw(st.integers(1, 20))
    e = engine(grace_us=3600 * 10**6, lateness_us=3600 * 10**6)  # nothing final mid-way
    stored = duplicates = 0
    latest: dict[tuple[str, int], Candle] = {}
    for i in range(0, len(stream), size):
        out = e.process(to_table(stream[i : i + size], TRADE_SCHEMA))
        stored += out.trades.num_rows
        duplicates += out.duplicates
        latest.update({(c.interval, c.open_time): c for c in out.candles})
    assert stored == len(trades) and duplicates == len(repeats)
    assert e.positions()[0].trades_seen == len(trades)
    for open_time, want in direct(trades, MIN).items():
        assert same(candle_tuple(latest[("1m", open_time)]), want)


@PROPS
@given(raw_trades, st.data(), st.integers(0, 3 * MIN), st.integers(0, 5 * MIN))
def test_watermark_finality_and_late_revisions_follow_the_rules(
    raw: list[tuple[int, float, float, bool]], data: st.DataObject, grace: int, lateness: int
) -> None:
    trades = data.draw(st.permutations(make(raw)))  # any arrival order
    size = data.draw(st.integers(1, 15))
    e = engine(grace_us=grace, lateness_us=lateness)
    watermark: int | None = None  # the rule, computed here independently
    merged_trades: list[Trade] = []
    late_ids: set[int] = set()
    latest: dict[tuple[str, int], Candle] = {}
    final_before: set[tuple[str, int]] = set()
    reported_late: set[int] = set()
    for i in range(0, len(trades), size):
        batch = trades[i : i + size]
        for t in batch:
            minute_close = t.ts_event - t.ts_event % MIN + MIN
            if watermark is not None and minute_close + lateness <= watermark:
                late_ids.add(t.trade_id)  # beyond allowed lateness: kept raw, not merged
            else:
                merged_trades.append(t)
        out = e.process(to_table(batch, TRADE_SCHEMA))
        newest = max(t.ts_event for t in batch) - grace
        watermark = newest if watermark is None else max(watermark, newest)
        assert e.watermark("binance") == watermark
        reported_late.update(out.late_trades.column("trade_id").to_pylist())
        for c in out.candles:
            key = (c.interval, c.open_time)
            # Final exactly when the window's end is at or below the watermark.
            assert c.is_final == (c.close_time <= watermark), (key, watermark)
            if key in final_before:
                assert c.revision > latest[key].revision  # a late trade re-publishes it
            elif c.is_final:
                assert c.revision == 0
            latest[key] = c
            if c.is_final:
                final_before.add(key)
    assert reported_late == late_ids
    assert e.positions()[0].trades_seen == len(trades)  # late ones are still stored raw
    for c in e.flush().candles:
        latest[(c.interval, c.open_time)] = c
    # Every merged trade counts in its minute; too-late ones in none.
    want = direct(merged_trades, MIN)
    minutes = {k[1]: c for k, c in latest.items() if k[0] == "1m"}
    assert minutes.keys() == want.keys()
    for open_time, expected in want.items():
        assert same(candle_tuple(minutes[open_time]), expected)
