"""The Binance frame parser at its edges, written to kill the mutants the recorded-frame and
fuzz tests let live (docs/mutation-testing.md): exact range limits of trade ids and times,
zero and non-finite prices, the exact error messages a dead letter carries, defaults of
optional fields, and which frame shapes count as control frames."""

import json

import pytest

from marketpipe.model.errors import FrameError
from marketpipe.model.records import Quote, Trade
from marketpipe.model.symbols import SymbolMap
from marketpipe.sources.binance.frames import (
    BookTickerPayload,
    Control,
    TradePayload,
    parse_frame,
    quote_from_payload,
    trade_from_payload,
)

MAX_ID = 2**63 - 1
MAX_MS = (2**63 - 1) // 1000  # the largest ms time whose µs value fits in int64
RECV = 1_723_161_254_087_896


def trade_frame(combined: bool = True, **fields: object) -> bytes:
    data: dict[str, object] = {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 7, "p": "61837.63"}
    data |= {"q": "0.02", "T": 1_723_161_255_342, "m": True}
    data |= fields
    body = {"stream": "btcusdt@trade", "data": data} if combined else data
    return json.dumps(body).encode()


def parse(raw: bytes | str) -> Trade | Quote | Control:
    return parse_frame(raw, SymbolMap(), RECV)


def error_of(raw: bytes | str) -> str:
    with pytest.raises(FrameError) as caught:
        parse(raw)
    return str(caught.value)


@pytest.mark.parametrize("combined", [True, False], ids=["combined", "raw"])
def test_a_trade_frame_becomes_the_exact_trade(combined: bool) -> None:
    assert parse(trade_frame(combined)) == Trade(
        exchange="binance",
        symbol="BTC-USDT",
        trade_id=7,
        price=61837.63,
        qty=0.02,
        side="sell",
        ts_event=1_723_161_255_342_000,
        ts_recv=RECV,
    )
    buy = parse(trade_frame(combined, m=False))
    assert isinstance(buy, Trade) and buy.side == "buy"


@pytest.mark.parametrize(("t", "T"), [(0, 1), (MAX_ID, MAX_MS), (0, MAX_MS), (MAX_ID, 1)])
def test_trade_ids_and_times_at_their_limits_are_accepted(t: int, T: int) -> None:
    trade = parse(trade_frame(t=t, T=T))
    assert isinstance(trade, Trade) and (trade.trade_id, trade.ts_event) == (t, T * 1000)


@pytest.mark.parametrize(("t", "T"), [(-1, 1), (MAX_ID + 1, 1), (0, 0), (0, -1), (0, MAX_MS + 1)])
def test_trade_ids_and_times_past_their_limits_are_rejected(t: int, T: int) -> None:
    assert error_of(trade_frame(t=t, T=T)) == f"trade id {t} or time {T} out of range"


@pytest.mark.parametrize(
    ("field", "text", "why"),
    [
        ("p", "0", "is not a positive finite number"),
        ("p", "0.00000000", "is not a positive finite number"),
        ("p", "-0.5", "is not a positive finite number"),
        ("p", "inf", "is not a positive finite number"),
        ("p", "nan", "is not a positive finite number"),
        ("q", "0", "is not a positive finite number"),
        ("q", "1e309", "is not a positive finite number"),
        ("p", "abc", "is not a number"),
        ("q", "", "is not a number"),
    ],
)
def test_a_price_or_qty_that_is_not_positive_and_finite_is_named_in_the_error(
    field: str, text: str, why: str
) -> None:
    name = {"p": "price", "q": "qty"}[field]
    assert error_of(trade_frame(**{field: text})) == f"{name} {text!r} {why}"


def test_the_smallest_positive_price_is_accepted() -> None:
    trade = parse(trade_frame(p="5e-324", q="1e-8"))
    assert isinstance(trade, Trade) and (trade.price, trade.qty) == (5e-324, 1e-8)


def test_optional_trade_fields_have_their_defaults() -> None:
    payload = TradePayload(s="BTCUSDT", t=1, p="1", q="1", T=1, m=False)
    assert (payload.e, payload.E) == ("trade", 0)
    assert BookTickerPayload(s="BTCUSDT", b="1", B="2", a="3", A="4").u == 0
    # A combined trade frame needs neither "e" nor "E".
    raw = b'{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","t":1,"p":"1","q":"1","T":1,"m":false}}'
    assert isinstance(parse(raw), Trade)


def book(combined: bool = True, **fields: object) -> bytes:
    data: dict[str, object] = {"u": 400900217, "s": "BNBUSDT", "b": "25.35190000"}
    data |= {"B": "31.21000000", "a": "25.36520000", "A": "40.66000000"} | fields
    body = {"stream": "bnbusdt@bookTicker", "data": data} if combined else data
    return json.dumps(body).encode()


@pytest.mark.parametrize("combined", [True, False], ids=["combined", "raw"])
def test_a_book_ticker_becomes_the_exact_quote_timed_at_receipt(combined: bool) -> None:
    assert parse(book(combined)) == Quote(
        exchange="binance",
        symbol="BNB-USDT",
        bid=25.3519,
        bid_qty=31.21,
        ask=25.3652,
        ask_qty=40.66,
        ts_event=RECV,
        ts_recv=RECV,
    )


def test_a_book_ticker_with_a_zero_bid_or_ask_is_rejected_but_zero_sizes_are_kept() -> None:
    assert error_of(book(b="0")) == "bid '0' is not a positive finite number"
    assert error_of(book(a="-1")) == "ask '-1' is not a positive finite number"
    quote = parse(book(B="0", A="0"))
    assert isinstance(quote, Quote) and (quote.bid_qty, quote.ask_qty) == (0.0, 0.0)


@pytest.mark.parametrize("missing", ["b", "a", "s", "B", "A"])
def test_a_raw_frame_missing_any_book_ticker_key_is_not_a_quote(missing: str) -> None:
    data = {"u": 1, "s": "BNBUSDT", "b": "1", "B": "1", "a": "2", "A": "1"}
    del data[missing]
    assert error_of(json.dumps(data)) == f"unrecognized frame with keys {sorted(data)[:8]}"


def test_a_raw_frame_with_an_event_type_is_never_read_as_a_quote() -> None:
    data = {"e": "24hrTicker", "s": "BNBUSDT", "b": "1", "B": "1", "a": "2", "A": "1"}
    assert error_of(json.dumps(data)) == f"unrecognized frame with keys {sorted(data)[:8]}"


def test_the_unrecognized_frame_error_lists_at_most_eight_sorted_keys() -> None:
    data = {k: 1 for k in "kjihgfedcba"}
    assert error_of(json.dumps(data)) == (
        "unrecognized frame with keys ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']"
    )


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b'{"e":"serverShutdown","E":1}', "server_shutdown"),
        (b'{"result":null,"id":3}', "result"),
        (b'{"error":{"code":2,"msg":"Invalid request"},"id":4}', "error"),
        (b'{"code":2,"msg":"Invalid request"}', "error"),
        (b'{"error":"bad"}', "error"),
    ],
)
def test_control_frames_carry_their_kind_and_whole_body(raw: bytes, kind: str) -> None:
    assert parse(raw) == Control(kind, json.loads(raw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "raw", [b'{"result":null}', b'{"id":3}', b'{"code":2}', b'{"msg":"Invalid request"}']
)
def test_half_a_control_frame_is_unrecognized(raw: bytes) -> None:
    keys = sorted(json.loads(raw))
    assert error_of(raw) == f"unrecognized frame with keys {keys}"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"stream":"btcusdt@depth@100ms","data":{}}', "unsupported stream 'btcusdt@depth@100ms'"),
        (b'{"stream":"btcusdt","data":{}}', "unsupported stream 'btcusdt'"),
        (b'{"stream":"btcusdt@trade","data":[1]}', "frame 'data' is not an object"),
        (b'{"stream":"btcusdt@trade"}', "invalid payload: Object missing required field `s`"),
        (
            b'{"stream":7,"data":{"e":"trade"}}',
            "invalid payload: Object missing required field `s`",
        ),
    ],
)
def test_bad_combined_frames_name_what_is_wrong(raw: bytes, message: str) -> None:
    assert error_of(raw) == message


def test_a_frame_that_is_not_json_or_not_an_object_is_named_so() -> None:
    assert error_of(b"\xff\xfe").startswith("not a JSON object: ")
    assert error_of(b"[1, 2]").startswith("not a JSON object: ")


def test_a_symbol_that_cannot_be_normalized_is_a_frame_error_with_its_reason() -> None:
    message = error_of(trade_frame(s="XYZ"))
    assert message == "cannot split symbol 'XYZ' into base and quote"


def test_the_payload_functions_use_the_symbol_map_given() -> None:
    symbols = SymbolMap({"1000SATSUSDT": ("1000SATS", "USDT")})
    payload = TradePayload(s="1000SATSUSDT", t=1, p="1", q="2", T=3, m=True)
    assert trade_from_payload(payload, symbols, 9).symbol == "1000SATS-USDT"
    quote = BookTickerPayload(s="1000SATSUSDT", b="1", B="2", a="3", A="4")
    assert quote_from_payload(quote, symbols, 9).symbol == "1000SATS-USDT"


def test_a_raw_book_ticker_of_exactly_the_five_keys_is_a_quote() -> None:
    raw = b'{"s":"BNBUSDT","b":"1.5","B":"2","a":"1.75","A":"3"}'
    assert parse(raw) == Quote("binance", "BNB-USDT", 1.5, 2.0, 1.75, 3.0, RECV, RECV)


def test_a_data_key_without_a_stream_is_not_unwrapped() -> None:
    # Only combined frames ({"stream", "data"}) carry their payload under "data".
    inner = json.loads(trade_frame(combined=False))
    assert error_of(json.dumps({"data": inner})) == "unrecognized frame with keys ['data']"


def test_the_stream_kind_is_everything_after_the_first_at_sign() -> None:
    raw = trade_frame().replace(b'"btcusdt@trade"', b'"btcusdt@kline@trade"')
    assert error_of(raw) == "unsupported stream 'btcusdt@kline@trade'"
