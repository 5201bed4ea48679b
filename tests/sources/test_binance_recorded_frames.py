"""parse_frame and the connector on real recorded Binance frames (see tests/data/README.md)."""

import gzip
import json
import time
from pathlib import Path

import pytest

from marketpipe.model.errors import FrameError
from marketpipe.model.records import Quote, Trade
from marketpipe.model.symbols import SymbolMap
from marketpipe.sources.binance.connector import BinanceConnector
from marketpipe.sources.binance.frames import Control, parse_frame
from tests.sources.fake_binance import FakeBinance, Sink, fast_settings, running, wait_until

DATA = Path(__file__).parents[1] / "data" / "binance"
RECV_08 = DATA / "btcusdt-spot-2024-08-08.recv.gz"
CRYPTOFEED = DATA / "cryptofeed-BINANCE.ws.1.0"


def recorded_lines() -> list[tuple[int, bytes]]:
    with gzip.open(RECV_08, "rb") as handle:
        out = []
        for line in handle:
            ts, _, raw = line.rstrip(b"\n").partition(b" ")
            out.append((int(ts) // 1000, raw))
        return out


@pytest.fixture(scope="module")
def parsed() -> dict[str, list[object]]:
    result: dict[str, list[object]] = {"trades": [], "quotes": [], "errors": [], "controls": []}
    symbols = SymbolMap()
    for recv_us, raw in recorded_lines():
        try:
            record = parse_frame(raw, symbols, recv_us)
        except FrameError as exc:
            result["errors"].append((raw, str(exc)))
            continue
        if isinstance(record, Trade):
            result["trades"].append(record)
        elif isinstance(record, Quote):
            result["quotes"].append(record)
        else:
            result["controls"].append(record)
    return result


def test_recorded_08_file_holds_9757_consecutive_trades(parsed: dict[str, list[object]]) -> None:
    trades = [t for t in parsed["trades"] if isinstance(t, Trade)]
    assert len(trades) == 9757
    ids = [t.trade_id for t in trades]
    assert ids == list(range(3735683259, 3735683259 + 9757))
    assert ids[-1] == 3735693015


def test_first_recorded_trade_is_a_taker_sell_at_61837_63(parsed: dict[str, list[object]]) -> None:
    first = parsed["trades"][0]
    assert isinstance(first, Trade)
    assert first.trade_id == 3735683259
    assert first.price == 61837.63 and first.qty == 0.02
    assert first.side == "sell"  # "m": true, the buyer was the maker
    assert first.symbol == "BTC-USDT" and first.exchange == "binance"
    assert first.ts_event == 1723161255342 * 1000  # T in ms -> µs
    assert first.ts_recv == 1723161254087896  # recorder clock, behind the exchange's


def test_recorded_sides_mirror_the_maker_flag(parsed: dict[str, list[object]]) -> None:
    trades = [t for t in parsed["trades"] if isinstance(t, Trade)]
    sells = sum(t.side == "sell" for t in trades)
    buys = sum(t.side == "buy" for t in trades)
    assert sells + buys == 9757 and sells > 0 and buys > 0
    with gzip.open(RECV_08, "rt") as handle:
        makers = sum('"m":true' in line for line in handle if "@trade" in line)
    assert sells == makers


def test_recorded_book_tickers_become_quotes_and_depth_frames_are_rejected(
    parsed: dict[str, list[object]],
) -> None:
    assert len(parsed["quotes"]) == 28040
    first = parsed["quotes"][0]
    assert isinstance(first, Quote)
    assert (first.bid, first.bid_qty, first.ask, first.ask_qty) == (
        61837.63,
        3.78826,
        61837.64,
        1.54698,
    )
    assert all(isinstance(q, Quote) and q.bid < q.ask for q in parsed["quotes"])
    # depth@100ms is not a stream we parse; the bare REST depth snapshot is not a frame at all.
    errors = parsed["errors"]
    assert len(errors) == 41249 - 9757 - 28040
    assert sum(b"depth@100ms" in raw for raw, _ in errors) == len(errors) - 1  # type: ignore[misc]
    assert parsed["controls"] == []


def cryptofeed_frames() -> list[bytes]:
    frames = []
    for line in CRYPTOFEED.read_bytes().splitlines():
        head, sep, body = line.partition(b": ")
        if sep and body.startswith(b"{") and b"<-" not in head and b"wss://" not in head:
            frames.append(body)
    return frames


def test_cryptofeed_2021_frames_book_tickers_parse_and_other_streams_fail_cleanly() -> None:
    quotes: list[Quote] = []
    rejected: dict[str, int] = {}
    for raw in cryptofeed_frames():
        stream = json.loads(raw)["stream"]
        try:
            record = parse_frame(raw, SymbolMap(), 1)
        except FrameError:
            kind = stream.split("@", 1)[1]
            rejected[kind] = rejected.get(kind, 0) + 1
            continue
        assert isinstance(record, Quote), stream
        quotes.append(record)
    assert len(quotes) == 84
    assert {q.symbol for q in quotes} <= {"NKN-USDT", "BLZ-ETH", "LRC-BTC", "RUNE-EUR"}
    assert rejected == {"depth@100ms": 177, "aggTrade": 2, "kline_1m": 2}


def test_control_frames_are_recognized() -> None:
    shutdown = parse_frame(b'{"e":"serverShutdown","E":1}', SymbolMap(), 1)
    assert isinstance(shutdown, Control) and shutdown.kind == "server_shutdown"
    result = parse_frame(b'{"result":null,"id":3}', SymbolMap(), 1)
    assert isinstance(result, Control) and result.kind == "result"
    error = parse_frame(b'{"error":{"code":2,"msg":"Invalid request"},"id":4}', SymbolMap(), 1)
    assert isinstance(error, Control) and error.kind == "error"


@pytest.mark.integration
async def test_connector_streams_the_recorded_file_without_gaps(
    fake: FakeBinance, sink: Sink
) -> None:
    lines = [raw for _, raw in recorded_lines() if b"@trade" in raw or b"@bookTicker" in raw]
    connector = BinanceConnector(fast_settings(fake), ["BTC-USDT"], sink)
    async with running(connector):
        await wait_until(lambda: len(fake.open_connections) == 1)
        ws = fake.open_connections[0].ws
        started = time.perf_counter()
        for raw in lines:
            await ws.send_str(raw.decode())
        await wait_until(lambda: len(sink.records) == len(lines), within=20)
        elapsed = time.perf_counter() - started
        status = connector.status()
    trades = sink.trades()
    assert [t.trade_id for t in trades] == list(range(3735683259, 3735693016))
    assert status.symbols["BTC-USDT"].gaps_found == 0
    assert len(sink.quotes) == 28040
    # Frames are handed over in batches, not one emit call per frame.
    assert len(sink.batches) < len(lines)
    print(f"{len(lines)} frames in {elapsed:.2f} s, {len(sink.batches)} emit calls")
