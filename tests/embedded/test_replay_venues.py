"""Replaying other venues' recordings and captures into a data dir: the candles equal an
independent reference computed from the file's JSON, and replaying again changes nothing."""

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness.reference import RawTrade, assert_candles_match, reference_candles
from marketpipe.config import Settings
from marketpipe.embedded.replay import replay
from marketpipe.model.records import Candle
from marketpipe.storage.embedded import EmbeddedStore
from tests.sources.test_replay_venues import COINBASE, KRAKEN, received

pytestmark = pytest.mark.integration

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def coinbase_raw_trades() -> list[RawTrade]:
    """The recording's matches, parsed with the stdlib: (product, id, price, size, buyer is
    maker, ms). The frame's `side` is the maker's, so a maker "buy" is a taker sell."""
    rows: list[RawTrade] = []
    for _, body in received(COINBASE):
        frame = json.loads(body)
        if frame["type"] in ("match", "last_match"):
            moment = datetime.fromisoformat(frame["time"].replace("Z", "+00:00"))
            ms = (moment - _EPOCH) // timedelta(milliseconds=1)
            rows.append(
                (frame["product_id"], frame["trade_id"], float(frame["price"]),
                 float(frame["size"]), frame["side"] == "buy", ms)
            )  # fmt: skip
    return rows


def completeness(settings: Settings, exchange: str) -> dict[str, float | None]:
    store = EmbeddedStore(settings.data_dir, read_only=True)
    try:
        return {p.symbol: p.completeness for p in store.warm.positions() if p.exchange == exchange}
    finally:
        store.close()


def stored(settings: Settings, exchange: str) -> tuple[list[Candle], dict[str, int]]:
    """Every 1m candle of `exchange`, by symbol then time, and the table counts."""
    store = EmbeddedStore(settings.data_dir, read_only=True)
    try:
        warm = store.warm
        symbols = sorted({p.symbol for p in warm.positions() if p.exchange == exchange})
        candles = [
            c
            for s in symbols
            for c in warm.candles(
                exchange=exchange, symbol=s, interval="1m", start=None, end=None, limit=None
            )
        ]
        return candles, warm.counts()
    finally:
        store.close()


def test_coinbase_recording_replays_into_the_reference_candles_once(settings: Settings) -> None:
    raw = coinbase_raw_trades()
    first = replay(settings, [COINBASE])
    assert (first.trades_read, first.trades_stored, first.dead_letters) == (107, 107, 0)
    assert first.venues == {"coinbase"}
    candles, counts = stored(settings, "coinbase")
    assert_candles_match(candles, reference_candles(raw))
    assert all(c.is_final for c in candles)
    assert counts["trades_recent"] == 107
    # Coinbase's ids are consecutive per product: the recording has no gap in any of its ten.
    products = {product for product, *_ in raw}
    assert completeness(settings, "coinbase") == dict.fromkeys(products, 1.0)
    again = replay(settings, [COINBASE])
    assert (again.trades_read, again.trades_stored, again.duplicates) == (107, 0, 107)
    assert stored(settings, "coinbase") == (candles, counts)


def test_kraken_recordings_replay_twice_into_the_same_data(settings: Settings) -> None:
    first = replay(settings, KRAKEN)
    assert (first.trades_stored, first.dead_letters) == (10, 0)
    before = stored(settings, "kraken")
    assert sum(c.trade_count for c in before[0]) == 10
    again = replay(settings, KRAKEN)
    assert (again.trades_stored, again.duplicates) == (0, 10)
    assert stored(settings, "kraken") == before


def synthetic_coinbase(n: int = 600) -> list[RawTrade]:
    """Taker trades of two products over about 7 minutes, consecutive ids per product."""
    rng = random.Random(13)
    start_ms = 1_723_161_590_000  # 10 s before a minute boundary
    rows: list[RawTrade] = []
    ids = {"BTC-USD": 900_000, "ETH-USD": 400_000}
    ms = start_ms
    for _ in range(n):
        ms += rng.randint(0, 1400)
        product = rng.choice(list(ids))
        ids[product] += 1
        price = round((61_000 if product == "BTC-USD" else 2_600) * rng.uniform(0.99, 1.01), 2)
        rows.append(
            (product, ids[product], price, round(rng.uniform(0.001, 2), 6), rng.random() < 0.5, ms)
        )
    return rows


def test_a_capture_jsonl_of_coinbase_trades_replays_into_the_reference(
    settings: Settings, tmp_path: Path
) -> None:
    raw = synthetic_coinbase()
    capture = tmp_path / "coinbase.jsonl"
    with capture.open("w") as out:
        for product, trade_id, price, qty, buyer_is_maker, ms in raw:
            at = (_EPOCH + timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z")
            out.write(
                json.dumps(
                    {"symbol": product, "trade_id": trade_id, "price": price, "qty": qty,
                     "side": "sell" if buyer_is_maker else "buy", "ts_event": at,
                     "ts_recv": ms * 1000 + 250}
                ) + "\n"
            )  # fmt: skip
    summary = replay(settings, [capture], venue="coinbase")
    assert (summary.trades_stored, summary.dead_letters, summary.venues) == (600, 0, {"coinbase"})
    candles, _ = stored(settings, "coinbase")
    reference = reference_candles(raw)
    assert len(reference) >= 14  # two products over 7+ minutes, both ends partial
    assert_candles_match(candles, reference)
    assert replay(settings, [capture], venue="coinbase").trades_stored == 0
    assert stored(settings, "coinbase")[0] == candles


def test_malformed_frames_are_stored_as_dead_letters_and_counted(
    settings: Settings, tmp_path: Path
) -> None:
    good = [body for _, body in received(COINBASE) if b'"type":"match"' in body][:2]
    path = tmp_path / "cryptofeed-COINBASE.ws.2.0"
    path.write_bytes(
        b"\n".join(
            [
                b"1618677817.1: " + good[0],
                b"1618677817.2: " + good[1][:40],  # cut short
                b"1618677817.3: [1, 2",
                b"1618677817.4: " + good[1],
            ]
        )
        + b"\n"
    )
    summary = replay(settings, [path])
    assert (summary.trades_stored, summary.dead_letters) == (2, 2)
    assert summary.first_dead_letter is not None
    assert summary.first_dead_letter.startswith(f"{path}:2: ")
    assert stored(settings, "coinbase")[1]["dead_letters"] == 2


def test_a_damaged_recording_reports_where_it_broke_and_keeps_what_came_before(
    settings: Settings, tmp_path: Path
) -> None:
    data = COINBASE.read_bytes()
    cut = tmp_path / "cryptofeed-COINBASE.ws.28.0.gz"
    cut.write_bytes(data[: len(data) * 3 // 4])
    summary = replay(settings, [cut])
    assert len(summary.broken) == 1
    assert summary.broken[0].startswith(f"{cut}: broken at line ")
    assert "the compressed data ends early" in summary.broken[0]
    assert 0 < summary.trades_stored < 107
    assert stored(settings, "coinbase")[1]["trades_recent"] == summary.trades_stored


def test_finnhub_frames_replay_each_trade_once_even_when_equal(
    settings: Settings, tmp_path: Path
) -> None:
    # Two real trades with equal price, size and time in one frame, then a ping.
    trade = {"s": "AAPL", "p": 220.5, "t": 1723161601500, "v": 10, "c": None}
    path = tmp_path / "finnhub.recv"
    path.write_text(
        f"1723161601600000000 {json.dumps({'type': 'trade', 'data': [trade, trade]})}\n"
        '1723161601700000000 {"type":"ping"}\n'
    )
    first = replay(settings, [path], venue="finnhub")
    assert (first.trades_stored, first.skipped_frames, first.dead_letters) == (2, 1, 0)
    assert completeness(settings, "finnhub") == {"AAPL-USD": None}  # keys, not ids
    again = replay(settings, [path], venue="finnhub")
    assert (again.trades_stored, again.duplicates) == (0, 2)
    candles, counts = stored(settings, "finnhub")
    assert counts["trades_recent"] == 2 and [c.volume for c in candles] == [20.0]
