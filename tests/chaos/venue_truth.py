"""Checks of a multi-venue live data dir against the simulated venues' ground truth.

Everything is keyed by (exchange, symbol): Coinbase's and Kraken's `BTC-USD` are two streams.
The stored rows are read straight from DuckDB; the candles are compared with
`harness.reference`, computed from the ground-truth trades alone.
"""

import json
from collections import defaultdict
from pathlib import Path

import duckdb

from harness.reference import RawTrade, assert_candles_match, reference_candles
from marketpipe.storage.embedded import EmbeddedStore
from tests.chaos.live_venues import VenueTrade

Stream = tuple[str, str]  # exchange, symbol


def stored_ids(data_dir: Path) -> dict[Stream, list[int]]:
    """Every raw trade row's id per stream, duplicates kept (after a restart's recovery)."""
    EmbeddedStore(data_dir).close()  # apply what the commit log holds, as a start would
    con = duckdb.connect(str(data_dir / "warm.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT exchange, symbol, trade_id FROM trades_recent").fetchall()
    finally:
        con.close()
    ids: dict[Stream, list[int]] = defaultdict(list)
    for exchange, symbol, trade_id in rows:
        ids[(exchange, symbol)].append(trade_id)
    return dict(ids)


def last_ids(truth: list[VenueTrade]) -> dict[Stream, int]:
    """The newest trade id each stream has made."""
    out: dict[Stream, int] = {}
    for exchange, symbol, trade_id, *_ in truth:
        out[(exchange, symbol)] = max(trade_id, out.get((exchange, symbol), trade_id))
    return out


def truth_in_span(truth: list[VenueTrade], ids: dict[Stream, list[int]]) -> list[VenueTrade]:
    """The venues' trades between each stream's first and last stored id."""
    span = {stream: (min(got), max(got)) for stream, got in ids.items()}
    return [
        t
        for t in truth
        if (t[0], t[1]) in span and span[(t[0], t[1])][0] <= t[2] <= span[(t[0], t[1])][1]
    ]


def assert_every_stream_exact(
    ids: dict[Stream, list[int]], truth: list[VenueTrade], streams: set[Stream]
) -> None:
    """Each stream stored exactly the ids its venue made over the stored span, once each."""
    assert set(ids) == streams, f"streams stored: {sorted(ids)}"
    made: dict[Stream, set[int]] = defaultdict(set)
    for t in truth_in_span(truth, ids):
        made[(t[0], t[1])].add(t[2])
    for stream, got in ids.items():
        assert len(got) == len(set(got)), f"{stream}: {len(got) - len(set(got))} duplicate rows"
        missing, extra = made[stream] - set(got), set(got) - made[stream]
        assert not missing and not extra, (
            f"{stream}: missing {sorted(missing)[:10]}, extra {sorted(extra)[:10]}"
        )


def assert_complete(data_dir: Path, streams: set[Stream]) -> None:
    """Every stream's stored position covers its span with no hole (completeness 100 %)."""
    store = EmbeddedStore(data_dir, read_only=True)
    try:
        positions = {(p.exchange, p.symbol): p for p in store.warm.positions()}
    finally:
        store.close()
    assert set(positions) == streams
    for stream, position in positions.items():
        assert position.completeness == 1.0, (stream, position.id_ranges)


def assert_candles_are_the_references(data_dir: Path, truth: list[VenueTrade]) -> None:
    """Each stream's 1m candles equal a reference computed from its ground-truth trades."""
    by_stream: dict[Stream, list[RawTrade]] = defaultdict(list)
    for exchange, symbol, trade_id, price, qty, side, ts in truth:
        # The reference's rows: a seller taker means the buyer was the maker.
        by_stream[(exchange, symbol)].append(
            (symbol, trade_id, price, qty, side == "sell", ts // 1000)
        )
    store = EmbeddedStore(data_dir, read_only=True)
    try:
        for (exchange, symbol), trades in by_stream.items():
            candles = store.warm.candles(
                exchange=exchange, symbol=symbol, interval="1m", start=None, end=None
            )
            assert_candles_match(candles, reference_candles(trades))
    finally:
        store.close()


def assert_whales_alerted_once(
    data_dir: Path, truth: list[VenueTrade], whale_notional: float = 100_000.0
) -> None:
    """One `whale_trade` alert per whale trade of the span, none twice."""
    con = duckdb.connect(str(data_dir / "warm.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT exchange, symbol, details FROM alerts WHERE kind = 'whale_trade'"
        ).fetchall()
    finally:
        con.close()
    fired = [(e, s, json.loads(d)["trade_id"]) for e, s, d in rows]
    assert len(fired) == len(set(fired)), "a whale trade alerted twice"
    assert set(fired) == {(e, s, i) for e, s, i, p, q, _, _ in truth if p * q >= whale_notional}
