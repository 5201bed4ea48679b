"""Differential tests of replay's native path (the Rust extension) against its Python path.

The Python path (polars regex fast path + the typed parser) is the reference. For the same
blocks both must give the same trades, quotes, dead letters (error, raw bytes, context) and
skipped counts. Trades are compared as multisets (each path puts its fast trades first, and
the fast paths take different frames) and, where every frame is canonical, in order too.
"""

import gzip
import itertools
import json
import random
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketpipe.model.schemas import TRADE_INT_SCHEMA, TRADE_SCHEMA
from marketpipe.observability import native as native_status
from marketpipe.simulator import SyntheticMarket, write_trade_frames
from marketpipe.sources.replay import ReplayChunk, ReplayReader

DATA = Path(__file__).resolve().parents[1] / "data" / "binance"
RECORDED = sorted(DATA.glob("*.recv.gz"))
MAX = 2**63 - 1
MAX_TIME_MS = MAX // 1000

pytestmark = pytest.mark.skipif(
    native_status.extension() is None, reason=f"native path inactive: {native_status.status()}"
)


def _reader(path: Path, native: bool) -> ReplayReader:
    if not path.exists():  # the reader checks its files' format up front
        path.write_bytes(b"1 {}\n")
    return ReplayReader([path], native=native)


def _chunks(lines: list[bytes], cuts: list[int], path: Path, native: bool) -> list[ReplayChunk]:
    """The lines cut into blocks at `cuts` (line indexes), each decoded as replay does."""
    reader = _reader(path, native)
    out = []
    bounds = [0, *sorted(set(cuts)), len(lines)]
    for a, b in itertools.pairwise(bounds):
        if a < b:
            out.append(reader._recv_block(b"".join(lines[a:b]), path, a + 1))
    return out


def _rows(table: pa.Table) -> list[tuple[object, ...]]:
    return [tuple(r.values()) for r in table.cast(TRADE_INT_SCHEMA).to_pylist()]


def _summary(chunk: ReplayChunk) -> tuple[object, ...]:
    return (
        repr(chunk.quotes),  # repr: a quantity may be NaN (the typed parser takes it)
        [(d.source, d.error, d.raw, d.context) for d in chunk.dead_letters],
        chunk.skipped,
    )


def assert_same(lines: list[bytes], cuts: list[int], path: Path, ordered: bool = False) -> None:
    python = _chunks(lines, cuts, path, native=False)
    native = _chunks(lines, cuts, path, native=True)
    assert len(python) == len(native)
    for p, n in zip(python, native, strict=True):
        assert n.trades.schema == TRADE_SCHEMA
        if ordered:
            assert _rows(n.trades) == _rows(p.trades)
        else:
            assert sorted(map(repr, _rows(n.trades))) == sorted(map(repr, _rows(p.trades)))
        assert _summary(n) == _summary(p)


# ---- frames ------------------------------------------------------------------------------


def trade_line(recv: object = 1723161600123456789, **fields: object) -> bytes:
    data = {"e": "trade", "E": 1723161600123, "s": "BTCUSDT", "t": 42, "p": "61000.50"}
    data |= {"q": "0.001", "T": 1723161600120, "m": True, "M": True}
    data |= fields
    frame = {"stream": "btcusdt@trade", "data": data}
    return f"{recv} {json.dumps(frame, separators=(',', ':'))}\n".encode()


def quote_line(
    recv: int = 1723161600123456789, stream: str = "btcusdt@bookTicker", **f: object
) -> bytes:
    data = {"u": 400900217, "s": "BTCUSDT", "b": "25.35190000", "B": "31.21000000"}
    data |= {"a": "25.36520000", "A": "40.66000000"} | f
    frame = {"stream": stream, "data": data}
    return f"{recv} {json.dumps(frame, separators=(',', ':'))}\n".encode()


def test_a_canonical_trade_has_its_values(tmp_path: Path) -> None:
    [chunk] = _chunks([trade_line()], [], tmp_path / "a.recv", native=True)
    assert chunk.trades.cast(TRADE_SCHEMA).to_pylist()[0] | {"ts_event": 0, "ts_recv": 0} == {
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "trade_id": 42,
        "price": 61000.5,
        "qty": 0.001,
        "side": "sell",
        "ts_event": 0,
        "ts_recv": 0,
    }
    ints = chunk.trades.column("ts_event").cast(pa.int64()).to_pylist()
    assert ints == [1723161600120 * 1000]
    assert chunk.trades.column("ts_recv").cast(pa.int64()).to_pylist() == [1723161600123456]


@pytest.mark.parametrize(
    ("fields", "taken"),
    [
        ({"t": MAX}, True),
        ({"t": MAX + 1}, False),
        ({"t": 0}, True),
        ({"t": -1}, False),
        ({"T": MAX_TIME_MS}, True),
        ({"T": MAX_TIME_MS + 1}, False),
        ({"T": 1}, True),
        ({"T": 0}, False),
        ({"p": "0.00000000"}, False),
        ({"q": "0"}, False),
        ({"p": "1e-8"}, True),
        ({"p": "6.1E4"}, True),
        ({"p": "inf"}, False),
        ({"p": "1_000"}, True),  # Python's float() reads it: handed back, the parser takes it
        ({"s": "ZZZ"}, False),  # cannot be normalized: the parser dead-letters it
        ({"s": "btcusdt"}, True),
        ({"m": 1}, False),
        ({"E": 10**30}, True),  # any integer size: the typed parser takes it too
    ],
)
def test_int64_and_decimal_bounds_match_the_python_path(
    tmp_path: Path, fields: dict[str, object], taken: bool
) -> None:
    lines = [trade_line(**fields)]
    assert_same(lines, [], tmp_path / "b.recv", ordered=True)
    [chunk] = _chunks(lines, [], tmp_path / "b.recv", native=True)
    assert chunk.trades.num_rows == int(taken)
    assert len(chunk.dead_letters) == int(not taken)


@pytest.mark.parametrize("recv", [MAX, MAX + 1, "0009", "", "١٢٣", "²", "12a"])
def test_recv_bounds_match_the_python_path(tmp_path: Path, recv: object) -> None:
    assert_same([trade_line(recv)], [], tmp_path / "c.recv", ordered=True)


def test_key_order_whitespace_and_unicode_decode_natively_like_the_parser(tmp_path: Path) -> None:
    data = {"m": False, "T": 5, "q": "2", "p": "3", "t": 7, "s": "ETHUSDT", "x": "é☃"}
    lines = [
        f'1000 {{"data":{json.dumps(data)},"stream":"ethusdt@trade"}}\n'.encode(),
        b'2000 { "stream" : "ethusdt@trade" , "data" : ' + json.dumps(data).encode() + b" }\r\n",
        ("3000 " + json.dumps({"stream": "x@trade", "data": data}, ensure_ascii=False)).encode(),
        ("4000 " + json.dumps({"stream": "x@trade", "data": data}, ensure_ascii=True)).encode(),
    ]
    lines = [line if line.endswith(b"\n") else line + b"\n" for line in lines]
    assert_same(lines, [], tmp_path / "d.recv")
    [chunk] = _chunks(lines, [], tmp_path / "d.recv", native=True)
    assert chunk.trades.column("trade_id").to_pylist() == [7, 7, 7, 7]
    assert not chunk.dead_letters


def test_quotes_keep_the_last_of_each_stream_across_both_decoders(tmp_path: Path) -> None:
    lines = [
        quote_line(1000, b="1"),
        quote_line(2000, b="2"),
        quote_line(3000, b="oops"),  # the last of its stream: dead-lettered, no quote
        quote_line(4000, stream="ethusdt@bookTicker", s="ETHUSDT", b="3"),
        quote_line(5000, stream="ethusdt@bookTicker", s="ETHUSDT", b="4"),
        b'6000 {"data":{"s":"SOLUSDT","b":"5","B":"1","a":"6","A":"1"},"stream":"s@bookTicker"}\n',
    ]
    assert_same(lines, [], tmp_path / "e.recv")
    [chunk] = _chunks(lines, [], tmp_path / "e.recv", native=True)
    assert [(q.symbol, q.bid) for q in chunk.quotes] == [("ETH-USDT", 4.0), ("SOL-USDT", 5.0)]
    assert [d.context.rsplit(":", 1)[1] for d in chunk.dead_letters] == ["3"]
    assert_same(lines, [3], tmp_path / "e.recv")  # a block boundary splits the stream


def test_a_byte_order_mark_at_a_block_start_is_dropped_on_both_paths(tmp_path: Path) -> None:
    """Polars' line reader drops it (the Python path); the native splitter does the same."""
    lines = [b"\xef\xbb\xbf" + trade_line(t=1), trade_line(t=2), b"\xef\xbb\xbf" + trade_line(t=3)]
    assert_same(lines, [], tmp_path / "bom.recv", ordered=True)
    [chunk] = _chunks(lines, [], tmp_path / "bom.recv", native=True)
    assert chunk.trades.column("trade_id").to_pylist() == [1, 2]
    assert [d.context.rsplit(":", 1)[1] for d in chunk.dead_letters] == ["3"]


# ---- generated frames --------------------------------------------------------------------

_INTS = st.one_of(
    st.sampled_from([0, 1, -1, MAX, MAX + 1, MAX_TIME_MS, MAX_TIME_MS + 1, -(2**63), 10**20]),
    st.integers(-(10**6), 2**64),
)
_DECIMALS = st.one_of(
    st.sampled_from(
        [
            "0.00000000",
            "0",
            "1e-8",
            "1E5",
            "+1.5",
            "-1",
            ".5",
            "5.",
            "inf",
            "nan",
            "1_0",
            " 1",
            "١٢",
            "007.50",
            "1e400",
            "1e-400",
            "",
            "x",
            "61000.50",
        ]
    ),
    st.decimals(min_value=0, max_value=10**9, allow_nan=False, places=8).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
_SYMBOLS = st.sampled_from(
    ["BTCUSDT", "btcusdt", "ETHBTC", "ZZZ", "", "BTC-USDT", "ßUSDT", "BTCéUSDT", "SHIBUSDT"]
)
_STREAMS = st.sampled_from(
    [
        "btcusdt@trade",
        "btcusdt@bookTicker",
        "btcusdt@depth@100ms",
        "a@b@trade",
        "@trade",
        "",
        "x@bookTickers",
        "ethusdt@bookTicker",
    ]
)
_ANY = st.one_of(_INTS, _DECIMALS, st.booleans(), st.none(), st.just([1]), st.just({"k": 1}))


@st.composite
def frame_lines(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["trade", "quote", "other", "garbage"]))
    if kind == "garbage":
        return draw(
            st.sampled_from(
                [
                    b"",
                    b"\r",
                    b"   ",
                    b"not json",
                    b'5 {"lastUpdateId":1,"bids":[]}',
                    b"\xff\xfe 1 {}",
                    b'7 {"stream":"btcusdt@trade","data":',
                    b"\xef\xbb\xbf1 {}",
                    b'8 {"stream":"btcusdt@trade","data":{"s":"BTC\xffUSDT"}}',
                    b"9 \x1f",
                    b'10 {"e":"trade","s":"BTCUSDT","t":1,"p":"1","q":"1","T":1,"m":true}',
                    b'11 {"result":null,"id":1}',
                ]
            )
        )
    if kind == "trade":
        fields = {"s": draw(_SYMBOLS), "t": draw(_INTS), "p": draw(_DECIMALS)}
        fields |= {"q": draw(_DECIMALS), "T": draw(_INTS), "m": draw(st.booleans())}
        fields |= {"e": "trade", "E": draw(_INTS), "M": True}
    else:
        fields = {"s": draw(_SYMBOLS), "b": draw(_DECIMALS), "B": draw(_DECIMALS)}
        fields |= {"a": draw(_DECIMALS), "A": draw(_DECIMALS), "u": draw(_INTS)}
    valid_only = draw(st.booleans())
    if not valid_only:  # a field of the wrong type, missing or unknown
        for key in draw(st.lists(st.sampled_from([*fields, "zz"]), max_size=2)):
            if draw(st.booleans()):
                fields.pop(key, None)
            else:
                fields[key] = draw(_ANY)
    keys = list(fields)
    if draw(st.booleans()):
        keys = draw(st.permutations(keys))
    data = {k: fields[k] for k in keys}
    stream = (
        draw(_STREAMS)
        if kind == "other"
        else f"btcusdt@{'trade' if kind == 'trade' else 'bookTicker'}"
    )
    top = {"stream": stream, "data": data}
    if draw(st.booleans()):
        top = {"data": data, "stream": stream}
    sep = draw(st.sampled_from([(",", ":"), (", ", ": "), (",", ":")]))
    text = json.dumps(top, separators=sep, ensure_ascii=draw(st.booleans()))
    recv = draw(st.one_of(st.integers(0, 2**64).map(str), st.sampled_from(["", "007", "١"])))
    line = f"{recv} {text}".encode()
    if draw(st.integers(0, 9)) == 0:  # cut short
        line = line[: draw(st.integers(0, len(line)))]
    return line


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(frame_lines(), min_size=1, max_size=30),
    endings=st.lists(st.sampled_from([b"\n", b"\r\n", b"\n\n"]), min_size=30, max_size=30),
    cuts=st.lists(st.integers(0, 30), max_size=4),
)
def test_generated_frames_give_the_same_chunks_on_both_paths(
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[bytes],
    endings: list[bytes],
    cuts: list[int],
) -> None:
    path = tmp_path_factory.mktemp("gen") / "g.recv"
    ended = [line + end for line, end in zip(lines, endings, strict=False)]
    ended[-1] = ended[-1].rstrip(b"\n")  # the last line of a file may lack its newline
    assert_same(ended, cuts, path)


# ---- recorded and synthetic files --------------------------------------------------------


@pytest.mark.parametrize("recording", RECORDED, ids=lambda p: p.name)
def test_recorded_frames_give_the_same_chunks_on_both_paths(
    tmp_path: Path, recording: Path
) -> None:
    lines = gzip.decompress(recording.read_bytes()).splitlines(keepends=True)
    cuts = random.Random(14).sample(range(len(lines)), 25)
    assert_same(lines, [], tmp_path / "r.recv", ordered=False)
    assert_same(lines, cuts, tmp_path / "r.recv", ordered=False)
    whole = list(ReplayReader([recording], native=True))
    reference = list(ReplayReader([recording], native=False))
    assert sum(c.trades.num_rows for c in whole) == sum(c.trades.num_rows for c in reference)
    assert [_summary(c) for c in whole] == [_summary(c) for c in reference]
    assert sum(c.trades.num_rows for c in whole) > 1000 and any(c.quotes for c in whole)


def test_a_large_synthetic_recording_gives_the_same_trades_in_order(tmp_path: Path) -> None:
    market = SyntheticMarket(["BTC-USDT", "ETH-USDT", "SOL-USDT"], 1000.0, 7)
    path = tmp_path / "big.recv"
    write_trade_frames(market.generate(200_000), path, seed=7, gzipped=False)
    lines = path.read_bytes().splitlines(keepends=True)
    cuts = random.Random(1).sample(range(len(lines)), 7)
    assert_same(lines, cuts, path, ordered=True)
    native = pa.concat_tables(c.trades for c in ReplayReader([path], native=True))
    python = pa.concat_tables(c.trades for c in ReplayReader([path], native=False))
    assert native.num_rows == 200_000
    assert native.equals(python)


def test_the_native_decoder_itself_takes_every_trade_and_quote_of_a_recording() -> None:
    """Not only equal outputs: the compiled path does the work (the rest is depth frames)."""
    from marketpipe.model.symbols import SymbolMap
    from marketpipe.sources.replay_native import decode_block

    ext = native_status.extension()
    assert ext is not None
    data = gzip.decompress(RECORDED[-1].read_bytes())
    decoded = decode_block(ext, data, 1, SymbolMap())
    streams = [line.split(b'"', 4)[3] for line in data.splitlines() if line]
    assert decoded.trades.num_rows == streams.count(b"btcusdt@trade")
    assert decoded.quotes.height == streams.count(b"btcusdt@bookTicker")
    assert decoded.rest.height == streams.count(b"btcusdt@depth@100ms")
    assert set(decoded.trades.column("symbol").to_pylist()) == {"BTC-USDT"}
