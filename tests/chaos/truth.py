"""Checks of a live data dir against the simulated exchange's ground truth."""

import json
from pathlib import Path

import duckdb

from harness.reference import reference_candles, sums_agree
from tests.chaos.snapshot import Snapshot

TruthTrade = tuple[str, int, float, float, str, int]  # symbol, id, price, qty, side, ts_event


def assert_matches_truth(
    snap: Snapshot, data_dir: Path, truth: list[TruthTrade], whale_notional: float = 100_000.0
) -> None:
    """Per symbol: stored ids are exactly the exchange's ids between our first and last; the
    1m candles equal SQL over those trades; one whale alert per whale trade among them."""
    stored: dict[str, set[int]] = {}
    for symbol, trade_id in snap.trades:
        stored.setdefault(symbol, set()).add(trade_id)
    assert stored, "nothing was stored"
    expected_trades: list[TruthTrade] = []
    for symbol, ids in stored.items():
        lo, hi = min(ids), max(ids)
        want = [t for t in truth if t[0] == symbol and lo <= t[1] <= hi]
        assert ids == {t[1] for t in want}, f"{symbol}: {len(ids)} stored, {len(want)} made"
        expected_trades += want
    reference = reference_candles(
        [(s, i, p, q, side == "sell", ts // 1000) for s, i, p, q, side, ts in expected_trades]
    )
    minutes = {k: v for k, v in snap.candles.items() if k[1] == "1m"}
    assert len(minutes) == len(reference)
    for ref in reference:
        got = minutes[(ref.symbol, "1m", ref.open_ms * 1000)]
        assert (got[0], got[1], got[2], got[3], got[6], got[7], got[8]) == (
            ref.open, ref.high, ref.low, ref.close, ref.trades, ref.first_id, ref.last_id,
        ), (ref.symbol, ref.open_ms)  # fmt: skip
        assert sums_agree(got[4], ref.volume), (ref.symbol, ref.open_ms)
        assert sums_agree(got[5], ref.quote_volume), (ref.symbol, ref.open_ms)
    whales = {(s, i) for s, i, p, q, _, _ in expected_trades if p * q >= whale_notional}
    con = duckdb.connect(str(data_dir / "warm.duckdb"), read_only=True)
    try:
        details = con.execute("SELECT details FROM alerts WHERE kind = 'whale_trade'").fetchall()
        symbols = con.execute("SELECT symbol FROM alerts WHERE kind = 'whale_trade'").fetchall()
    finally:
        con.close()
    fired = [(s, json.loads(d)["trade_id"]) for (s,), (d,) in zip(symbols, details, strict=True)]
    assert len(fired) == len(set(fired)), "a whale trade alerted twice"
    assert set(fired) == whales
