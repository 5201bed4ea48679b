"""Kraken's frame parser on the real v1 recordings, on v2 frames, and on malformed input."""

import contextlib
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketpipe.model.errors import FrameError
from marketpipe.model.records import Quote, Trade
from marketpipe.sources.cryptofeed_recording import received_frames
from marketpipe.sources.kraken.frames import ArrivalKeys, parse_frame, rfc3339_us, seconds_us
from marketpipe.sources.venue import Control, Parsed

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[1] / "data" / "kraken"
RECORDINGS = [
    "cryptofeed-KRAKEN.ws.48.0",
    "cryptofeed-KRAKEN.ws.49.0",
    "cryptofeed-KRAKEN.ws.50.0.gz",
]
XMR_FRAME = (
    b'[993,[["354.11000000","0.89594024","1618678142.557535","s","l",""]],"trade","XMR/USD"]'
)


def frames(name: str) -> Iterator[tuple[bytes, int]]:
    path = DATA / name
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        yield from received_frames(handle)


def parse_recording(name: str, keys: ArrivalKeys | None = None) -> list[Parsed]:
    keys = keys or ArrivalKeys()
    return [record for raw, recv in frames(name) for record in parse_frame(raw, recv, keys)]


def trades_of(records: list[Parsed]) -> list[Trade]:
    return [r for r in records if isinstance(r, Trade)]


def v2(channel: str, *data: dict[str, object]) -> bytes:
    return json.dumps({"channel": channel, "type": "update", "data": list(data)}).encode()


def v2_trade(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "symbol": "BTC/USD",
        "side": "buy",
        "price": 26400.1,
        "qty": 0.5,
        "ord_type": "market",
        "trade_id": 74000001,
        "timestamp": "2023-09-25T07:49:37.708706Z",
    }
    row.update(overrides)
    return row


def parse(raw: bytes, recv_us: int = 1) -> list[Parsed]:
    return parse_frame(raw, recv_us, ArrivalKeys())


# -- the real recordings -------------------------------------------------------------------


@pytest.mark.parametrize("name", RECORDINGS)
def test_every_recorded_frame_parses_and_none_is_dead_lettered(name: str) -> None:
    keys = ArrivalKeys()
    for raw, recv in frames(name):
        parse_frame(raw, recv, keys)  # raises FrameError for a frame it would dead-letter


def test_recorded_trade_and_ticker_counts_match_a_plain_json_count() -> None:
    expected_trades = expected_quotes = expected_books = 0
    for name in RECORDINGS:
        for raw, _ in frames(name):
            body = json.loads(raw)
            if isinstance(body, list):
                expected_trades += len(body[1]) if body[-2] == "trade" else 0
                expected_quotes += body[-2] == "ticker"
                expected_books += str(body[-2]).startswith("book")
    records = [r for name in RECORDINGS for r in parse_recording(name)]
    others = [r for r in records if isinstance(r, Control) and r.body.get("channel")]
    assert len(trades_of(records)) == expected_trades == 10
    assert sum(isinstance(r, Quote) for r in records) == expected_quotes == 18
    assert len(others) == expected_books == 4279
    assert {r.kind for r in others} == {"other"}


def test_known_v1_trade_frame_gives_exact_values_and_taker_sell() -> None:
    [trade] = parse_frame(XMR_FRAME, 1618678142592855, ArrivalKeys())
    assert trade == Trade(
        exchange="kraken",
        symbol="XMR-USD",
        trade_id=1618678142592855 * 1000,
        price=354.11,
        qty=0.89594024,
        side="sell",
        ts_event=1618678142557535,
        ts_recv=1618678142592855,
    )


def test_recorded_side_convention_b_is_taker_buy_s_is_taker_sell() -> None:
    trades = trades_of(parse_recording(RECORDINGS[0]))
    by_time = {t.ts_event: t for t in trades}
    buy = by_time[1618678158135041]  # [..."0.043040","20000.00000000",...,"b","l",""], SC/EUR
    assert (buy.symbol, buy.price, buy.qty, buy.side) == ("SC-EUR", 0.04304, 20000.0, "buy")
    sell = by_time[1618678157946108]  # "0.042960","5000.00000000", "s"
    assert (sell.symbol, sell.price, sell.qty, sell.side) == ("SC-EUR", 0.04296, 5000.0, "sell")
    assert [t.side for t in trades].count("buy") == 5  # five "b" rows in the file, five "s"


def test_a_recorded_frame_of_two_trades_gives_two_keys_in_array_order() -> None:
    trades = [t for t in trades_of(parse_recording(RECORDINGS[0])) if t.ts_recv == 1618678150856557]
    assert [(t.trade_id, t.price, t.qty) for t in trades] == [
        (1618678150856557000, 354.04, 0.28245396),
        (1618678150856557001, 353.81, 1.71754604),
    ]


def test_recorded_keys_are_unique_and_the_same_when_replayed_twice() -> None:
    first = [t.trade_id for t in trades_of(parse_recording(RECORDINGS[0]))]
    again = [t.trade_id for t in trades_of(parse_recording(RECORDINGS[0]))]
    keys = ArrivalKeys()  # and replayed twice through one parser's memory
    parse_recording(RECORDINGS[0], keys)
    same_parser = [t.trade_id for t in trades_of(parse_recording(RECORDINGS[0], keys))]
    assert first == again == same_parser
    assert len(set(first)) == len(first) == 10


def test_recorded_v1_ticker_becomes_a_quote_of_the_best_bid_and_ask() -> None:
    quotes = [r for r in parse_recording(RECORDINGS[1]) if isinstance(r, Quote)]
    waves = quotes[0]  # "a":["13.253900",35,"35.72892241"],"b":["13.232900",185,"185.18432037"]
    assert (waves.symbol, waves.bid, waves.bid_qty, waves.ask, waves.ask_qty) == (
        "WAVES-EUR",
        13.2329,
        185.18432037,
        13.2539,
        35.72892241,
    )
    assert waves.ts_event == waves.ts_recv == 1618678132949649
    assert {q.symbol for q in quotes} >= {"KSM-BTC", "BTC-CHF", "XMR-USD"}  # XBT is BTC


def test_recorded_v1_events_are_controls() -> None:
    controls = [r for r in parse_recording(RECORDINGS[0]) if isinstance(r, Control)]
    kinds = [c.kind for c in controls]
    assert (kinds.count("heartbeat"), kinds.count("result"), kinds.count("other")) == (30, 10, 1)


# -- arrival keys of id-less trades --------------------------------------------------------


def test_equal_trades_in_one_frame_get_distinct_keys() -> None:
    row = '["10.0","1.0","1618678142.557535","b","l",""]'
    raw = f'[1,[{row},{row}],"trade","XBT/USD"]'.encode()
    a, b = trades_of(parse(raw, 7))
    assert (a.price, a.qty, a.ts_event) == (b.price, b.qty, b.ts_event)
    assert (a.trade_id, b.trade_id) == (7000, 7001)


def test_distinct_frames_received_in_the_same_microsecond_continue_the_slots() -> None:
    keys = ArrivalKeys()
    one = b'[1,[["10.0","1.0","1618678142.557535","b","l",""]],"trade","XBT/USD"]'
    two = b'[1,[["10.0","2.0","1618678142.557535","b","l",""]],"trade","XBT/USD"]'
    assert [t.trade_id for t in trades_of(parse_frame(one, 7, keys))] == [7000]
    assert [t.trade_id for t in trades_of(parse_frame(two, 7, keys))] == [7001]
    assert [t.trade_id for t in trades_of(parse_frame(one, 7, keys))] == [7000]  # seen: same
    assert [t.trade_id for t in trades_of(parse_frame(one, 8, keys))] == [8000]  # another µs


def test_keys_fit_int64_up_to_the_last_keyable_microsecond() -> None:
    last = (2**63 - 1) // 1000 - 1
    [trade] = parse_frame(XMR_FRAME, last, ArrivalKeys())
    assert trade.trade_id == last * 1000 <= 2**63 - 1
    with pytest.raises(FrameError, match="cannot key"):
        parse_frame(XMR_FRAME, last + 1, ArrivalKeys())
    with pytest.raises(FrameError, match="cannot key"):
        parse_frame(XMR_FRAME, -1, ArrivalKeys())


def test_a_thousand_trades_in_one_microsecond_fit_and_one_more_does_not() -> None:
    row = '["10.0","1.0","1618678142.557535","b","l",""]'
    full = f'[1,[{",".join([row] * 1000)}],"trade","XBT/USD"]'.encode()
    keys = ArrivalKeys()
    assert trades_of(parse_frame(full, 5, keys))[-1].trade_id == 5999
    with pytest.raises(FrameError, match="more than 1000"):
        parse_frame(XMR_FRAME, 5, keys)


def test_an_invalid_frame_takes_no_slot() -> None:
    keys = ArrivalKeys()
    bad = (
        b'[1,[["10.0","1.0","1618678142.5","b","l",""],["x","1","1","b","l",""]],"trade","XBT/USD"]'
    )
    with pytest.raises(FrameError):
        parse_frame(bad, 9, keys)
    assert [t.trade_id for t in trades_of(parse_frame(XMR_FRAME, 9, keys))] == [9000]


# -- v2 ----------------------------------------------------------------------------------


def test_v2_trade_frame_with_several_trades_gives_one_trade_each() -> None:
    raw = v2(
        "trade",
        v2_trade(),
        v2_trade(trade_id=74000002, side="sell", price=26400, qty=1, symbol="ETH/USD"),
    )
    first, second = parse(raw, 99)
    assert first == Trade("kraken", "BTC-USD", 74000001, 26400.1, 0.5, "buy", 1695628177708706, 99)
    assert (second.symbol, second.trade_id, second.side, second.price) == (
        "ETH-USD",
        74000002,
        "sell",
        26400.0,
    )


def test_v2_trade_ids_at_the_int64_bounds() -> None:
    assert parse(v2("trade", v2_trade(trade_id=0)))[0].trade_id == 0  # type: ignore[union-attr]
    top = parse(v2("trade", v2_trade(trade_id=2**63 - 1)))[0]
    assert isinstance(top, Trade) and top.trade_id == 2**63 - 1
    with pytest.raises(FrameError):
        parse(v2("trade", v2_trade(trade_id=2**63)))
    with pytest.raises(FrameError):
        parse(v2("trade", v2_trade(trade_id=-1)))


def test_v2_ticker_with_and_without_timestamp() -> None:
    row = {"symbol": "BTC/USD", "bid": 100.0, "bid_qty": 0, "ask": 100.5, "ask_qty": 2.5}
    [plain] = parse(v2("ticker", row), 42)
    assert plain == Quote("kraken", "BTC-USD", 100.0, 0.0, 100.5, 2.5, 42, 42)
    [stamped] = parse(v2("ticker", dict(row, timestamp="2023-09-25T09:04:31.742648Z")), 42)
    assert isinstance(stamped, Quote) and stamped.ts_event == 1695632671742648


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        ({"channel": "heartbeat"}, "heartbeat"),
        ({"channel": "status", "type": "update", "data": [{"system": "online"}]}, "other"),
        ({"method": "subscribe", "success": True, "result": {"channel": "trade"}}, "result"),
        (
            {"method": "subscribe", "success": False, "error": "Currency pair not supported"},
            "error",
        ),
        ({"method": "pong", "req_id": 3}, "heartbeat"),
        ({"event": "subscriptionStatus", "status": "error", "errorMessage": "x"}, "error"),
        ({"event": "subscriptionStatus", "status": "subscribed"}, "result"),
        ({"event": "systemStatus", "status": "online"}, "other"),
        ({"event": "heartbeat"}, "heartbeat"),
    ],
)
def test_control_frames(frame: dict[str, object], kind: str) -> None:
    [control] = parse(json.dumps(frame).encode())
    assert isinstance(control, Control) and control.kind == kind and control.body == frame


def test_v1_book_frames_are_other_controls_naming_channel_and_pair() -> None:
    raw = (
        b'[1360,{"a":[["0.1","2","1618678123.4"]]},{"b":[["0.09","1","1618678123.4"]],"c":"1"},'
        b'"book-1000","ADA/XBT"]'
    )
    assert parse(raw) == [Control("other", {"channel": "book-1000", "pair": "ADA/XBT"})]


# -- malformed input ----------------------------------------------------------------------

MALFORMED: list[bytes] = [
    b"",
    b"   ",
    b"not json",
    b"42",
    b'"trade"',
    b"{",
    b"[1,2",
    b'{"channel":"trade"}',
    b'{"channel":"trade","data":{}}',
    b'{"channel":"book","type":"update","data":[]}',
    b'{"something":"else"}',
    b'{"event":"unknownEvent"}',
    v2("trade", {"symbol": "BTC/USD"}),
    v2("trade", v2_trade(trade_id=1.5)),
    v2("trade", v2_trade(trade_id="1")),
    v2("trade", v2_trade(price=0)),
    v2("trade", v2_trade(price=-1)),
    v2("trade", v2_trade(qty=0)),
    v2("trade", v2_trade(price=True)),
    v2("trade", v2_trade(side="b")),
    v2("trade", v2_trade(symbol="BTCUSD")),
    v2("trade", v2_trade(symbol="BTC/USD/EUR")),
    v2("trade", v2_trade(timestamp="2023-09-25T07:49:37.708706")),
    v2("trade", v2_trade(timestamp="2023-02-30T07:49:37Z")),
    v2("trade", v2_trade(timestamp="1969-12-31T23:59:59Z")),
    v2("trade", v2_trade(timestamp="1695628177")),
    v2("trade", v2_trade(timestamp="2023-09-25T07:49:37.708706+02:00")),
    v2("ticker", {"symbol": "BTC/USD", "bid": 0, "bid_qty": 1, "ask": 1, "ask_qty": 1}),
    v2("ticker", {"symbol": "BTC/USD", "bid": 1, "bid_qty": -1, "ask": 1, "ask_qty": 1}),
    v2("ticker", {"symbol": "BTC/USD", "bid": 1}),
    b'{"channel":"trade","type":"update","data":[{"price":NaN}]}',
    b'{"channel":"trade","type":"update","data":['
    + json.dumps(v2_trade()).replace("26400.1", "1e400").encode()
    + b"]}",
    b'[1,[["1.0","1.0","1618678142.5","b","l"]],"trade","XBT/USD"]',
    b'[1,[["1.0","1.0","1618678142.5","x","l",""]],"trade","XBT/USD"]',
    b'[1,[["abc","1.0","1618678142.5","b","l",""]],"trade","XBT/USD"]',
    b'[1,[["1.0","nan","1618678142.5","b","l",""]],"trade","XBT/USD"]',
    b'[1,[["1.0","inf","1618678142.5","b","l",""]],"trade","XBT/USD"]',
    b'[1,[["1.0","1.0","-1.5","b","l",""]],"trade","XBT/USD"]',
    b'[1,[["1.0","1.0","0","b","l",""]],"trade","XBT/USD"]',
    b'[1,[["1.0","1.0","soon","b","l",""]],"trade","XBT/USD"]',
    b'[1,[[1.0,"1.0","1618678142.5","b","l",""]],"trade","XBT/USD"]',
    b'[1,[],"trade","XBT/USD"]',
    b'[1,[["1.0","1.0","1618678142.5","b","l",""]],"trade","XBTUSD"]',
    b'[1,{"a":["1",1,"1"]},"ticker","XBT/USD"]',
    b'[1,{"a":["0",1,"1"],"b":["1",1,"1"]},"ticker","XBT/USD"]',
    b'[1,[],"unknown","XBT/USD"]',
    b'[1,"trade","XBT/USD"]',
    b"[]",
    b"[1,[],2,3]",
]


@pytest.mark.parametrize("raw", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_frames_raise_frame_error(raw: bytes) -> None:
    with pytest.raises(FrameError):
        parse(raw, 1618678142592855)


def test_time_parsers_are_exact_and_truncate_below_the_microsecond() -> None:
    assert rfc3339_us("1970-01-01T00:00:00.000001Z") == 1
    assert rfc3339_us("2023-09-25T07:49:37.7087069Z") == 1695628177708706
    assert rfc3339_us("2023-09-25T07:49:37+00:00") == 1695628177000000
    assert rfc3339_us("9999-12-31T23:59:59.999999Z") == 253402300799999999 < 2**63
    assert seconds_us("1618678142.557535") == 1618678142557535
    assert seconds_us("1618678142.5575359") == 1618678142557535
    assert seconds_us("1618678142") == 1618678142000000
    with pytest.raises(FrameError):
        rfc3339_us("1970-01-01T00:00:00Z")  # the epoch itself is no trade time


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_parse_or_raise_frame_error(raw: bytes) -> None:
    with contextlib.suppress(FrameError):
        parse(raw)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@FUZZ
@given(
    st.sampled_from(["trade", "ticker"]),
    st.lists(
        st.dictionaries(
            st.sampled_from([*v2_trade(), "bid", "ask", "bid_qty", "ask_qty"]),
            JSON,
            max_size=9,
        ),
        max_size=3,
    ),
)
def test_random_v2_payloads_give_valid_records_or_frame_error(
    channel: str, rows: list[dict[str, object]]
) -> None:
    try:
        records = parse(v2(channel, *rows))
    except FrameError:
        return
    for record in records:
        if isinstance(record, Trade):
            assert 0 <= record.trade_id < 2**63 and record.price > 0 and record.qty > 0
            assert 0 < record.ts_event < 2**63
        else:
            assert isinstance(record, Quote) and record.bid > 0 and record.ask > 0


@FUZZ
@given(st.lists(JSON, max_size=5))
def test_random_arrays_parse_or_raise_frame_error(items: list[object]) -> None:
    with contextlib.suppress(FrameError):
        parse(json.dumps(items).encode())
