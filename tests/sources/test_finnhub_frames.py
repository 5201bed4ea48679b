"""Finnhub frame parser: hand-written frames of the documented format (there is no recording),
malformed shapes, and the properties of the id-less trade keys and tick-rule sides."""

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketpipe.model.errors import FrameError
from marketpipe.model.records import Trade
from marketpipe.sources.finnhub.frames import MAX_MS, SLOTS, TradeKeys, parse_frame
from marketpipe.sources.venue import Control

T0 = 1_700_000_000_123  # ms


def frame(*items: dict[str, object]) -> bytes:
    return json.dumps({"type": "trade", "data": list(items)}).encode()


def item(
    s: str = "AAPL", p: float = 189.5, t: int = T0, v: float = 10, **kw: object
) -> dict[str, object]:
    return {"s": s, "p": p, "t": t, "v": v, "c": ["1", "12"], **kw}


def trades(raw: bytes, keys: TradeKeys, recv_us: int = 5) -> list[Trade]:
    out = parse_frame(raw, recv_us, keys)
    assert all(isinstance(r, Trade) for r in out)
    return [r for r in out if isinstance(r, Trade)]


def test_documented_frame_maps_every_field() -> None:
    raw = (
        b'{"data":[{"c":["1","8","24","12"],"p":122.1,"s":"TSLA","t":1672348887195,"v":1},'
        b'{"c":null,"p":129.58,"s":"AAPL","t":1672348887666,"v":1},'
        b'{"p":129.575,"s":"BRK.B","t":1672348887785,"v":3.5}],"type":"trade"}'
    )
    got = trades(raw, TradeKeys(), recv_us=1672348887800123)
    assert got == [
        Trade(
            "finnhub",
            "TSLA-USD",
            1672348887195000,
            122.1,
            1.0,
            "buy",
            1672348887195000,
            1672348887800123,
        ),
        Trade(
            "finnhub",
            "AAPL-USD",
            1672348887666000,
            129.58,
            1.0,
            "buy",
            1672348887666000,
            1672348887800123,
        ),
        Trade(
            "finnhub",
            "BRK.B-USD",
            1672348887785000,
            129.575,
            3.5,
            "buy",
            1672348887785000,
            1672348887800123,
        ),
    ]


def test_ping_and_error_are_controls() -> None:
    assert parse_frame(b'{"type":"ping"}', 1, TradeKeys()) == (Control("heartbeat", {}),)
    assert parse_frame(b'{"type":"error","msg":"Invalid API key"}', 1, TradeKeys()) == (
        Control("error", {"msg": "Invalid API key"}),
    )


def test_empty_batch_and_price_updates_give_no_trades() -> None:
    keys = TradeKeys()
    assert parse_frame(b'{"type":"trade","data":[]}', 1, keys) == ()
    # v = 0 is a price update, not a trade: skipped, and it takes no ordinal.
    got = trades(frame(item(v=0), item(v=2)), keys)
    assert [(t.trade_id, t.qty) for t in got] == [(T0 * 1000, 2.0)]


# -- keys -------------------------------------------------------------------------------------


def test_equal_trades_in_one_millisecond_keep_distinct_keys() -> None:
    got = trades(frame(item(), item(), item()), TradeKeys())
    assert [t.trade_id for t in got] == [T0 * 1000, T0 * 1000 + 1, T0 * 1000 + 2]
    assert len({(t.price, t.qty, t.ts_event) for t in got}) == 1


def test_ordinals_continue_across_frames_and_are_per_symbol_and_millisecond() -> None:
    keys = TradeKeys()
    first = trades(frame(item(), item(s="MSFT"), item(t=T0 + 1)), keys)
    second = trades(frame(item(p=190.0), item(s="MSFT", p=400.0), item(t=T0 + 1, p=1.0)), keys)
    assert [t.trade_id for t in first] == [T0 * 1000, T0 * 1000, (T0 + 1) * 1000]
    assert [t.trade_id for t in second] == [T0 * 1000 + 1, T0 * 1000 + 1, (T0 + 1) * 1000 + 1]


def test_a_duplicated_frame_gets_its_first_keys_back() -> None:
    keys = TradeKeys()
    raw = frame(item(), item())
    first = trades(raw, keys, recv_us=1)
    other = trades(frame(item(p=200.0)), keys)  # a real new trade in between
    again = trades(raw, keys, recv_us=99)
    assert again == first  # same keys, same sides, same everything
    assert other[0].trade_id == T0 * 1000 + 2  # the duplicate took no ordinal


def test_a_replay_gives_the_same_keys() -> None:
    frames = [frame(item(), item(p=189.4)), frame(item(), item(t=T0 + 5)), frame(item(s="MSFT"))]
    runs = []
    for _ in range(2):
        keys = TradeKeys()  # a fresh run, as a replay or a restart starts
        runs.append([t for raw in frames for t in trades(raw, keys)])
    assert runs[0] == runs[1]
    assert len({(t.symbol, t.trade_id) for t in runs[0]}) == 5


def test_exactly_1000_trades_in_one_millisecond_key_and_the_1001st_is_a_frame_error() -> None:
    keys = TradeKeys()
    got = trades(frame(*[item()] * SLOTS), keys)
    assert [t.trade_id for t in got] == [T0 * 1000 + i for i in range(SLOTS)]
    with pytest.raises(FrameError, match="more than 1000"):
        parse_frame(frame(item(p=1.0)), 1, keys)
    # Other milliseconds and symbols are unaffected.
    assert trades(frame(item(t=T0 + 1)), keys)[0].trade_id == (T0 + 1) * 1000


def test_a_rejected_frame_takes_no_ordinals() -> None:
    keys = TradeKeys()
    with pytest.raises(FrameError):
        parse_frame(frame(*[item()] * (SLOTS + 1)), 1, keys)
    assert trades(frame(item()), keys)[0].trade_id == T0 * 1000
    with pytest.raises(FrameError):  # one bad item rejects the whole frame before keying
        parse_frame(frame(item(), item(p=-1)), 1, keys)
    assert trades(frame(item(p=189.6)), keys)[0].trade_id == T0 * 1000 + 1


def test_keys_at_the_int64_limit() -> None:
    keys = TradeKeys()
    got = trades(frame(*[item(t=MAX_MS)] * SLOTS), keys)
    assert got[-1].trade_id == MAX_MS * 1000 + 999 <= 2**63 - 1
    assert (MAX_MS + 1) * 1000 + 999 > 2**63 - 1
    for bad in (MAX_MS + 1, 0, -1, 2**63):
        with pytest.raises(FrameError):
            parse_frame(frame(item(t=bad)), 1, TradeKeys())
    assert trades(frame(item(t=1)), TradeKeys())[0].trade_id == 1000


def test_memory_is_bounded_and_forgotten_frames_are_keyed_anew() -> None:
    keys = TradeKeys(duplicate_window=2, ordinal_window=2)
    a, b, c = frame(item()), frame(item(t=T0 + 1)), frame(item(t=T0 + 2))
    trades(a, keys), trades(b, keys)
    assert trades(a, keys)[0].trade_id == T0 * 1000  # still remembered
    trades(c, keys)  # pushes b's frame and a's counter out
    assert len(keys._frames) == 2 and len(keys._next) == 2
    # b forgotten as a frame, its millisecond still counted: keyed as a new trade.
    assert trades(b, keys)[0].trade_id == (T0 + 1) * 1000 + 1


# -- sides ------------------------------------------------------------------------------------


def test_tick_rule_sides() -> None:
    prices = [10.0, 10.0, 10.5, 10.5, 10.2, 10.2, 10.3, 10.1]
    got = trades(frame(*[item(p=p, t=T0 + i) for i, p in enumerate(prices)]), TradeKeys())
    assert [t.side for t in got] == ["buy", "buy", "buy", "buy", "sell", "sell", "buy", "sell"]


def test_tick_rule_is_per_symbol() -> None:
    got = trades(
        frame(item(p=10.0), item(s="MSFT", p=5.0), item(p=9.0), item(s="MSFT", p=6.0)), TradeKeys()
    )
    assert [t.side for t in got] == ["buy", "buy", "sell", "buy"]


# -- malformed --------------------------------------------------------------------------------

MALFORMED = [
    b"",
    b"not json",
    b"[]",
    b'{"type":"trade"}',
    b'{"type":"trade","data":null}',
    b'{"type":"trade","data":{}}',
    b'{"type":"trade","data":[1]}',
    b'{"data":[]}',
    b'{"type":"news","data":[]}',
    b'{"type":5}',
    b'{"type":"trade","data":[{"s":"AAPL","p":1,"t":1}]}',  # no v
    b'{"type":"trade","data":[{"p":1,"t":1,"v":1}]}',  # no s
    b'{"type":"trade","data":[{"s":"AAPL","p":"1","t":1,"v":1}]}',
    b'{"type":"trade","data":[{"s":"AAPL","p":1,"t":1.5,"v":1}]}',
    b'{"type":"trade","data":[{"s":"AAPL","p":1,"t":"1","v":1}]}',
    b'{"type":"trade","data":[{"s":"AAPL","p":true,"t":1,"v":1}]}',
    b'{"type":"trade","data":[{"s":"AAPL","p":1,"t":1,"v":1,"c":"1"}]}',
    b'{"type":"trade","data":[{"s":"AAPL","p":1,"t":1,"v":1,"c":[1]}]}',
    b'{"type":"trade","data":[{"s":"AAPL","p":0,"t":1,"v":1}]}',
    b'{"type":"trade","data":[{"s":"AAPL","p":-1,"t":1,"v":1}]}',
    b'{"type":"trade","data":[{"s":"AAPL","p":1e400,"t":1,"v":1}]}',
    b'{"type":"trade","data":[{"s":"AAPL","p":1,"t":1,"v":-1}]}',
    b'{"type":"trade","data":[{"s":"AAPL","p":1,"t":1,"v":1e400}]}',
    b'{"type":"trade","data":[{"s":"","p":1,"t":1,"v":1}]}',
    b'{"type":"trade","data":[{"s":"aapl","p":1,"t":1,"v":1}]}',
    b'{"type":"trade","data":[{"s":"BINANCE:BTCUSDT","p":1,"t":1,"v":1}]}',
    b'{"type":"trade","data":[{"s":"AAPL-USD","p":1,"t":1,"v":1}]}',
    b'{"type":"trade","data":[{"s":"ABCDEFGHIJKLMNOP","p":1,"t":1,"v":1}]}',
    b'{"type":"trade","data":[{"s":"AAPL","p":1,"t":1,"v":1}]',  # truncated
    b'{"type":"trade","data":[{"s":"AAPL","p":NaN,"t":1,"v":1}]}',
]


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_frames_raise_frame_error(raw: bytes) -> None:
    with pytest.raises(FrameError):
        parse_frame(raw, 1, TradeKeys())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_parse_or_raise_frame_error(raw: bytes) -> None:
    with contextlib.suppress(FrameError):
        parse_frame(raw, 1, TradeKeys())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["AAPL", "MSFT"]), st.integers(0, 3)), max_size=60))
def test_keys_are_unique_and_equal_an_independent_count(rows: list[tuple[str, int]]) -> None:
    got = trades(frame(*[item(s=s, t=T0 + dt) for s, dt in rows]), TradeKeys())
    seen: dict[tuple[str, int], int] = {}
    expected = []
    for s, dt in rows:
        n = seen.get((s, dt), 0)
        seen[(s, dt)] = n + 1
        expected.append((f"{s}-USD", (T0 + dt) * 1000 + n))
    assert [(t.symbol, t.trade_id) for t in got] == expected
    assert len(set(expected)) == len(expected)
