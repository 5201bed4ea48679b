"""Replay reads every venue's recordings through that venue's own parser: the trades a real
recording holds (counted and summed straight from its JSON here), the side conventions on
known frames, the venue taken from the file or --venue, and bad frames dead-lettered."""

import gzip
import json
import re
import shutil
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import pytest

from harness.reference import sums_agree
from marketpipe.model.errors import SourceError
from marketpipe.model.schemas import TRADE_INT_SCHEMA
from marketpipe.sources.replay import ReplayChunk, ReplayReader, detect_format
from tests.conftest import DATA

COINBASE = DATA / "coinbase" / "cryptofeed-COINBASE.ws.28.0.gz"
KRAKEN = sorted((DATA / "kraken").glob("cryptofeed-KRAKEN.ws.*"))
BINANCE_CF = DATA / "binance" / "cryptofeed-BINANCE.ws.1.0"
RECEIVED = re.compile(rb"^(\d+)\.(\d+): (.*)$")


def received(path: Path) -> list[tuple[int, bytes]]:
    """`(recv µs, frame)` of a cryptofeed file's received lines, by a regex of our own."""
    opener = gzip.open if path.suffix == ".gz" else open
    out = []
    with opener(path, "rb") as handle:
        for line in handle:
            found = RECEIVED.match(line.rstrip(b"\r\n"))
            if found:
                whole, frac, body = found.groups()
                out.append((int(whole) * 1_000_000 + int((frac + b"000000")[:6]), body))
    return out


def read(paths: list[Path], **kwargs: object) -> tuple[pa.Table, list[ReplayChunk]]:
    """The trades (times as int µs) and the chunks of a replay reader."""
    chunks = list(ReplayReader(paths, **kwargs))  # type: ignore[arg-type]
    return pa.concat_tables([c.trades for c in chunks]).cast(TRADE_INT_SCHEMA), chunks


def dead(chunks: list[ReplayChunk]) -> list[str]:
    return [f"{d.context} {d.error}" for c in chunks for d in c.dead_letters]


# ---- Coinbase ------------------------------------------------------------------------------


def test_coinbase_recording_gives_its_107_matches_with_the_taker_side() -> None:
    matches = [
        (us, json.loads(body))
        for us, body in received(COINBASE)
        if json.loads(body).get("type") in ("match", "last_match")
    ]
    assert len(matches) == 107  # 97 match + 10 last_match (../shared/data/README.md)
    trades, chunks = read([COINBASE])
    assert dead(chunks) == []
    assert trades.num_rows == len(matches)
    assert set(trades.column("exchange").to_pylist()) == {"coinbase"}
    sizes: dict[str, float] = defaultdict(float)
    for _, m in matches:
        sizes[m["product_id"]] += float(m["size"])
    got: dict[str, float] = defaultdict(float)
    for row in trades.to_pylist():
        got[row["symbol"]] += row["qty"]
    assert got.keys() == sizes.keys()
    assert all(sums_agree(got[s], sizes[s]) for s in sizes)
    # The maker's side is in the frame; the taker's is the opposite, frame by frame.
    opposite = {"buy": "sell", "sell": "buy"}
    expected = {(m["product_id"], m["trade_id"]): opposite[m["side"]] for _, m in matches}
    assert {(r["symbol"], r["trade_id"]): r["side"] for r in trades.to_pylist()} == expected
    recv_of = {(m["product_id"], m["trade_id"]): us for us, m in matches}
    assert {(r["symbol"], r["trade_id"]): r["ts_recv"] for r in trades.to_pylist()} == recv_of


def test_a_known_coinbase_maker_sell_is_a_taker_buy_at_its_own_time() -> None:
    trades, _ = read([COINBASE])
    row = next(r for r in trades.to_pylist() if r["trade_id"] == 280232)
    # {"type":"match","trade_id":280232,"side":"sell","size":"985","price":"0.00001305",
    #  "product_id":"SKL-BTC","time":"2021-04-17T16:43:37.089723Z"}, received 1618677817.1295161
    assert (row["symbol"], row["side"], row["qty"], row["price"]) == (
        "SKL-BTC", "buy", 985.0, 0.00001305
    )  # fmt: skip
    assert row["ts_event"] == 1_618_677_817_089_723
    assert row["ts_recv"] == 1_618_677_817_129_516


def test_coinbase_recording_keeps_the_last_ticker_per_product_and_skips_book_frames() -> None:
    frames = [json.loads(body) for _, body in received(COINBASE)]
    types = Counter(f["type"] for f in frames)
    _, chunks = read([COINBASE])
    quotes = {q.symbol: q for c in chunks for q in c.quotes}
    last_ticker = {f["product_id"]: f for f in frames if f["type"] == "ticker"}
    assert quotes.keys() == last_ticker.keys()
    for product, frame in last_ticker.items():
        assert (quotes[product].bid, quotes[product].ask) == (
            float(frame["best_bid"]), float(frame["best_ask"])
        )  # fmt: skip
    # Everything but trades and tickers is valid feed data we do not ingest: skipped.
    other = sum(n for kind, n in types.items() if kind not in ("match", "last_match", "ticker"))
    assert sum(c.skipped for c in chunks) == other


# ---- Kraken --------------------------------------------------------------------------------


def kraken_v1_trades() -> list[tuple[str, list[str], int]]:
    rows = []
    for path in KRAKEN:
        for us, body in received(path):
            frame = json.loads(body)
            if isinstance(frame, list) and frame[-2] == "trade":
                rows += [(frame[-1], row, us) for row in frame[1]]
    return rows


def test_kraken_recordings_give_their_v1_trades_with_the_taker_side() -> None:
    expected = kraken_v1_trades()
    assert len(expected) == 10
    trades, chunks = read(KRAKEN)
    assert dead(chunks) == [] and trades.num_rows == len(expected)
    side = {"b": "buy", "s": "sell"}  # v1 names the taker's side
    want = sorted(
        (float(p), float(v), side[s], round(float(t) * 1e6), us)
        for _, (p, v, t, s, *_), us in expected
    )
    got = sorted(
        (r["price"], r["qty"], r["side"], r["ts_event"], r["ts_recv"]) for r in trades.to_pylist()
    )
    assert got == want
    pairs = Counter(pair for pair, _, _ in expected)
    assert Counter(trades.column("symbol").to_pylist()) == {
        {"XMR/USD": "XMR-USD", "SC/EUR": "SC-EUR"}[p]: n for p, n in pairs.items()
    }


def test_kraken_arrival_keys_are_unique_and_the_same_on_every_replay() -> None:
    first, _ = read(KRAKEN)
    again, _ = read(KRAKEN)
    keys = first.column("trade_id").to_pylist()
    assert len(set(keys)) == len(keys)
    assert again.column("trade_id").to_pylist() == keys
    # Key = recv µs * 1000 + slot (sources/kraken/frames.py ArrivalKeys).
    assert all(
        k // 1000 == r for k, r in zip(keys, first.column("ts_recv").to_pylist(), strict=True)
    )


def test_kraken_v2_frames_in_recv_lines_keep_the_taker_side_and_ids(tmp_path: Path) -> None:
    frame = {
        "channel": "trade",
        "type": "update",
        "data": [
            {"symbol": "BTC/USD", "side": "sell", "price": 61000.5, "qty": 0.25,
             "ord_type": "market", "trade_id": 41, "timestamp": "2024-08-09T00:00:01.123456Z"},
            {"symbol": "BTC/USD", "side": "buy", "price": 61001.0, "qty": 0.5,
             "ord_type": "limit", "trade_id": 42, "timestamp": "2024-08-09T00:00:01.5Z"},
        ],
    }  # fmt: skip
    path = tmp_path / "kraken-v2.recv"
    path.write_text(f"1723161601600000000 {json.dumps(frame)}\n")
    trades, chunks = read([path], venue="kraken")
    assert dead(chunks) == []
    assert [(r["trade_id"], r["side"], r["symbol"]) for r in trades.to_pylist()] == [
        (41, "sell", "BTC-USD"), (42, "buy", "BTC-USD")
    ]  # fmt: skip
    assert trades.column("ts_event").to_pylist() == [1_723_161_601_123_456, 1_723_161_601_500_000]
    assert set(trades.column("ts_recv").to_pylist()) == {1_723_161_601_600_000}


# ---- Binance's cryptofeed recording --------------------------------------------------------


def test_binance_cryptofeed_recording_gives_book_tickers_and_skips_other_streams() -> None:
    frames = [json.loads(body) for _, body in received(BINANCE_CF)]
    streams = Counter(f["stream"].partition("@")[2] for f in frames if "stream" in f)
    assert streams["trade"] == 0 and streams["bookTicker"] > 0
    trades, chunks = read([BINANCE_CF])
    assert trades.num_rows == 0 and dead(chunks) == []
    last = {
        f["data"]["s"]: f["data"] for f in frames if f.get("stream", "").endswith("@bookTicker")
    }
    quotes = {q.symbol.replace("-", ""): q for c in chunks for q in c.quotes}
    assert quotes.keys() == last.keys()
    assert all(
        quotes[s].bid == float(d["b"]) and quotes[s].ask == float(d["a"]) for s, d in last.items()
    )
    assert sum(c.skipped for c in chunks) == sum(streams.values()) - streams["bookTicker"] + sum(
        1 for f in frames if "stream" not in f
    )


# ---- which venue ---------------------------------------------------------------------------


def test_the_venue_comes_from_the_name_else_the_connect_line_else_venue(tmp_path: Path) -> None:
    assert detect_format(COINBASE) == "cryptofeed"
    assert ReplayReader([COINBASE, *KRAKEN]).venues() == ["coinbase", "kraken", "kraken", "kraken"]
    renamed = tmp_path / "session-2021-04-17.log.gz"
    shutil.copy(COINBASE, renamed)  # `wss://ws-feed.pro.coinbase.com <-> ...` on line 1
    assert ReplayReader([renamed]).venues() == ["coinbase"]
    # --venue wins over the name: Kraken's frames in a file named after Binance.
    misnamed = tmp_path / "cryptofeed-BINANCE.ws.9.0"
    shutil.copy(KRAKEN[0], misnamed)
    assert ReplayReader([misnamed], venue="Kraken").venues() == ["kraken"]
    trades, chunks = read([misnamed], venue="kraken")
    assert trades.num_rows == 10 and dead(chunks) == []


def test_an_unknown_venue_fails_before_any_work_naming_it(tmp_path: Path) -> None:
    other = tmp_path / "cryptofeed-BITFINEX.ws.1.0"
    other.write_text("wss://api.bitfinex.com/ws/2 <-> 1618677816.84\n1618677817.1: [0]\n")
    with pytest.raises(SourceError, match=r"BITFINEX.*unknown venue 'bitfinex'; known venues"):
        ReplayReader([COINBASE, other])
    renamed = tmp_path / "capture.log"
    shutil.copy(other, renamed)
    with pytest.raises(SourceError, match=r"recorded from wss://api.bitfinex.com/ws/2.*--venue"):
        ReplayReader([renamed])
    headless = tmp_path / "frames.log"
    headless.write_text('1618677817.1: {"type":"heartbeat"}\n')
    with pytest.raises(SourceError, match=r"neither its name .* nor a connect line.*--venue"):
        ReplayReader([headless])
    assert ReplayReader([headless], venue="coinbase").venues() == ["coinbase"]
    with pytest.raises(SourceError, match="--venue: unknown venue 'nasdaq'"):
        ReplayReader([COINBASE], venue="nasdaq")
    csv = tmp_path / "BTCUSDT-trades-2024-08-09.csv"
    csv.write_text("5,61000.1,0.5,30500.05,1723161600000,True,True\n")
    with pytest.raises(SourceError, match="Binance's public dumps, not coinbase's"):
        ReplayReader([csv], venue="coinbase")


# ---- bad input -----------------------------------------------------------------------------


def test_malformed_frames_are_dead_lettered_under_file_and_line(tmp_path: Path) -> None:
    good = [body for _, body in received(COINBASE) if b'"type":"match"' in body][:3]
    lines = [
        b"wss://ws-feed.pro.coinbase.com <-> 1618677816.84",
        b"1618677817.1: " + good[0],
        b"1618677817.2: " + good[1].replace(b'"size":"', b'"size":"-'),  # negative size
        b"1618677817.3: " + good[2][:-20],  # cut short
        b"not a recording line at all",
        b'1618677817.4: {"type":"mystery"}',
        b"1618677817.5: \xff\xfe",  # not UTF-8
        b"1618677817.6: " + good[2],
    ]
    path = tmp_path / "cryptofeed-COINBASE.ws.1.0"
    path.write_bytes(b"\n".join(lines) + b"\n")
    trades, chunks = read([path])
    assert trades.num_rows == 2
    contexts = [d.context for c in chunks for d in c.dead_letters]
    assert contexts == [f"{path}:{n}" for n in (3, 4, 5, 6, 7)]
    errors = dead(chunks)
    assert "size" in errors[0] and "not a cryptofeed recording line" in errors[2]
    assert "unknown message type 'mystery'" in errors[3]
    raw = [d.raw for c in chunks for d in c.dead_letters]
    assert raw[2] == b"not a recording line at all"


def test_a_recording_cut_short_keeps_the_lines_before_and_names_the_break(tmp_path: Path) -> None:
    data = COINBASE.read_bytes()
    cut = tmp_path / "cryptofeed-COINBASE.ws.28.0.gz"
    cut.write_bytes(data[: len(data) // 2])
    readable = zlib.decompressobj(wbits=31).decompress(data[: len(data) // 2])
    whole = readable[: readable.rfind(b"\n") + 1]
    bodies = [found.group(3) for line in whole.splitlines() if (found := RECEIVED.match(line))]
    expected = sum(json.loads(b).get("type") in ("match", "last_match") for b in bodies)
    trades, chunks = read([cut])
    assert trades.num_rows == expected > 0
    broken = [c.broken for c in chunks if c.broken]
    line = whole.count(b"\n") + 1
    assert broken == [
        f"{cut}: broken at line {line:,} (byte {len(whole):,} of the decompressed data): "
        "the compressed data ends early (the file is cut short). Kept the "
        f"{line - 1:,} lines before it; the break is in dead_letters."
    ]
