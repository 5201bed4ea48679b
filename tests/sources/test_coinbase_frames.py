"""Coinbase ws-feed parser on the real 2021 recording, the side convention, and bad input."""

import contextlib
import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketpipe.model.errors import FrameError
from marketpipe.model.records import Quote, Trade
from marketpipe.sources.coinbase.frames import parse_frame
from marketpipe.sources.cryptofeed_recording import received_frames
from marketpipe.sources.venue import Control

pytestmark = pytest.mark.unit

RECORDING = Path(__file__).parents[1] / "data" / "coinbase" / "cryptofeed-COINBASE.ws.28.0.gz"
MATCH: dict[str, Any] = {
    "type": "match",
    "trade_id": 280232,
    "maker_order_id": "2a0da34e-61f7-4c36-88e5-c9dd15927b16",
    "taker_order_id": "3c82abaa-c01e-4608-be59-6a1e69742891",
    "side": "sell",
    "size": "985",
    "price": "0.00001305",
    "product_id": "SKL-BTC",
    "sequence": 177100030,
    "time": "2021-04-17T16:43:37.089723Z",
}
TICKER: dict[str, Any] = {
    "type": "ticker",
    "product_id": "BTC-USD",
    "price": "100.5",
    "best_bid": "100.25",
    "best_bid_size": "0.5",
    "best_ask": "100.75",
    "best_ask_size": "1.5",
    "side": "buy",
    "time": "2024-01-01T00:00:00.000001Z",
    "trade_id": 9,
}


def frames() -> list[tuple[bytes, int]]:
    with gzip.open(RECORDING) as handle:
        return list(received_frames(handle))


def parse(body: dict[str, Any], recv_us: int = 7) -> object:
    return parse_frame(json.dumps(body).encode(), recv_us)


def test_every_recorded_frame_parses_and_none_is_dead_lettered() -> None:
    parsed = [parse_frame(raw, us) for raw, us in frames()]  # raises on any FrameError
    kinds = Counter(
        type(p).__name__ if not isinstance(p, Control) else f"Control:{p.kind}" for p in parsed
    )
    # README facts: 97 match + 10 last_match; 107 ticker; 3 subscriptions; the rest book data.
    assert kinds["Trade"] == 107 and kinds["Quote"] == 107 and kinds["Control:result"] == 3
    assert kinds["Control:other"] == len(parsed) - 217


def test_recorded_trade_ids_are_consecutive_per_product() -> None:
    trades = [p for raw, us in frames() if isinstance(p := parse_frame(raw, us), Trade)]
    by_product: dict[str, list[int]] = {}
    for trade in trades:
        by_product.setdefault(trade.symbol, []).append(trade.trade_id)
    assert len(by_product) == 10  # the ten subscribed products each sent a last_match
    for ids in by_product.values():
        assert ids == list(range(ids[0], ids[0] + len(ids)))


def test_known_recorded_match_is_a_maker_sell_so_the_taker_bought() -> None:
    recorded = [
        (raw, us) for raw, us in frames() if b'"trade_id":280232,' in raw and b"match" in raw
    ]
    assert len(recorded) == 1
    trade = parse_frame(*recorded[0])
    assert trade == Trade(
        exchange="coinbase",
        symbol="SKL-BTC",
        trade_id=280232,
        price=0.00001305,
        qty=985.0,
        side="buy",
        ts_event=1_618_677_817_089_723,  # 2021-04-17T16:43:37.089723Z
        ts_recv=1_618_677_817_129_516,
    )


def test_recorded_last_match_maker_buy_is_a_taker_sell() -> None:
    raw = next(
        raw for raw, _ in frames() if raw.startswith(b'{"type":"last_match","trade_id":82007,')
    )
    trade = parse_frame(raw, 1)
    assert isinstance(trade, Trade)
    assert (trade.symbol, trade.side, trade.price, trade.qty) == ("SKL-GBP", "sell", 0.5752, 1008.2)
    assert trade.ts_event == 1_618_677_809_571_587  # 2021-04-17T16:43:29.571587Z


def test_recorded_ticker_without_sizes_is_a_quote_with_sizes_zero() -> None:
    raw, us = next((raw, us) for raw, us in frames() if b'"ticker","sequence":177100030' in raw)
    quote = parse_frame(raw, us)
    assert quote == Quote(
        exchange="coinbase",
        symbol="SKL-BTC",
        bid=0.00001303,
        bid_qty=0.0,
        ask=0.00001305,
        ask_qty=0.0,
        ts_event=1_618_677_817_089_723,
        ts_recv=us,
    )


def test_current_ticker_with_sizes() -> None:
    quote = parse(TICKER)
    assert quote == Quote("coinbase", "BTC-USD", 100.25, 0.5, 100.75, 1.5, 1_704_067_200_000_001, 7)
    untimed = parse({k: v for k, v in TICKER.items() if k != "time"}, recv_us=42)
    assert isinstance(untimed, Quote) and untimed.ts_event == 42


def test_control_messages() -> None:
    beat = {"type": "heartbeat", "last_trade_id": 20, "product_id": "BTC-USD", "sequence": 90}
    assert parse(beat) == Control("heartbeat", beat)
    error = {"type": "error", "message": "Failed to subscribe", "reason": "BAD-X is not valid"}
    assert parse(error) == Control("error", error)
    for kind in ("snapshot", "l2update", "status", "done"):
        assert parse({"type": kind, "product_id": "BTC-USD", "changes": [[1]]}) == Control(
            "other", {"type": kind, "product_id": "BTC-USD"}
        )


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"price": "0"}, "price"),
        ({"price": "-1"}, "price"),
        ({"price": "NaN"}, "price"),
        ({"price": "inf"}, "price"),
        ({"price": "abc"}, "price"),
        ({"size": "0"}, "size"),
        ({"price": 1.5}, "invalid"),
        ({"side": "both"}, "invalid"),
        ({"trade_id": -1}, "trade_id"),
        ({"trade_id": 2**63}, "trade_id"),
        ({"trade_id": "1"}, "invalid"),
        ({"time": "yesterday"}, "invalid"),
        ({"time": "2021-04-17T16:43:37.089723"}, "zone"),
        ({"time": "1970-01-01T00:00:00Z"}, "epoch"),
        ({"time": "1969-12-31T23:59:59Z"}, "epoch"),
        ({"product_id": "BTCUSD"}, "BASE-QUOTE"),
        ({"product_id": "BTC--USD"}, "malformed"),
        ({"product_id": None}, "invalid"),
    ],
)
def test_malformed_match_raises_frame_error(change: dict[str, Any], error: str) -> None:
    with pytest.raises(FrameError, match=error):
        parse(MATCH | change)


def test_missing_match_fields_raise_frame_error() -> None:
    for key in ("trade_id", "side", "size", "price", "product_id", "time"):
        with pytest.raises(FrameError, match="invalid"):
            parse({k: v for k, v in MATCH.items() if k != key})


def test_trade_id_boundaries_of_int64() -> None:
    top = parse(MATCH | {"trade_id": 2**63 - 1})
    zero = parse(MATCH | {"type": "last_match", "trade_id": 0})
    assert isinstance(top, Trade) and top.trade_id == 2**63 - 1
    assert isinstance(zero, Trade) and zero.trade_id == 0


def test_time_boundaries() -> None:
    first = parse(MATCH | {"time": "1970-01-01T00:00:00.000001Z"})
    last = parse(MATCH | {"time": "9999-12-31T23:59:59.999999Z"})
    offset = parse(MATCH | {"time": "2021-04-17T18:43:37.089723+02:00"})
    assert isinstance(first, Trade) and first.ts_event == 1
    assert isinstance(last, Trade) and last.ts_event == 253_402_300_799_999_999
    assert isinstance(offset, Trade) and offset.ts_event == 1_618_677_817_089_723


@pytest.mark.parametrize(
    "change",
    [{"best_bid": "0"}, {"best_ask": "-1"}, {"best_bid_size": "-0.1"}, {"best_ask_size": "nan"}],
)
def test_malformed_ticker_raises_frame_error(change: dict[str, Any]) -> None:
    with pytest.raises(FrameError):
        parse(TICKER | change)


def test_zero_book_size_is_accepted() -> None:
    quote = parse(TICKER | {"best_bid_size": "0"})
    assert isinstance(quote, Quote) and quote.bid_qty == 0.0


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"",
        b"[1, 2]",
        b'{"no_type": 1}',
        b'{"type": 5}',
        b'{"type": "mystery"}',
        b'{"type": "ticker", "product_id": "BTC-USD"}',
        b'{"type": "match"',
        b"\xff\xfe",
    ],
)
def test_unknown_or_broken_frames_raise_frame_error(raw: bytes) -> None:
    with pytest.raises(FrameError):
        parse_frame(raw, 1)


def test_recorded_match_and_last_match_counts() -> None:
    kinds = Counter(
        json.loads(raw)["type"] for raw, us in frames() if isinstance(parse_frame(raw, us), Trade)
    )
    assert kinds == {"match": 97, "last_match": 10}


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["match", "last_match", "ticker", "heartbeat", "error", "x"]),
    extra=st.dictionaries(st.sampled_from(sorted(MATCH.keys() | TICKER.keys())), _json, max_size=6),
)
def test_any_message_parses_or_raises_frame_error_only(kind: str, extra: dict[str, Any]) -> None:
    body = (MATCH if "match" in kind else TICKER) | extra | {"type": kind}
    with contextlib.suppress(FrameError):
        parse(body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_parse_or_raise_frame_error_only(raw: bytes) -> None:
    with contextlib.suppress(FrameError):
        parse_frame(raw, 1)
