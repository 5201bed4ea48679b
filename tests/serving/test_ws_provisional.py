"""The hub at each stage of a batch, over a real socket (the app under uvicorn, batches
published into its broadcaster as the live pipeline does): bookTickers leave provisionally,
alerts and tickers (which read the store) only once the batch is durable, each once; a
batch first seen at its commit goes out whole."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect

from harness.app_server import serving
from harness.ws_client import next_message, no_message
from marketpipe.bus.broadcast import CommitBroadcaster
from marketpipe.model.batch import CommitBatch
from marketpipe.model.records import Alert, Candle, Quote
from marketpipe.serving.app import create_app
from marketpipe.serving.backend import embedded_backend
from marketpipe.serving.market import MarketView, Stats24h
from marketpipe.serving.settings import ApiSettings
from marketpipe.storage.embedded import EmbeddedStore
from tests.serving.conftest import healthy

QUIET_S = 0.3  # how long "nothing more arrives" is watched for
W = 1_723_161_600_000_000
QUOTE = Quote("binance", "BTC-USDT", 60_000.0, 1.5, 60_001.0, 2.5, W, W)
ALERT = Alert("a1", "whale_trade", "info", "binance", "BTC-USDT", W, 150_000.0, 100_000.0, "{}")
OPEN_MINUTE = Candle(
    "binance", "BTC-USDT", "1m", W, W + 60_000_000, 60_000.0, 60_010.0, 59_990.0, 60_005.0,
    2.0, 120_010.0, 3, 1.0, 60_005.0, 60_005.0, 1, 3, False, 0,
)  # fmt: skip
STATS = Stats24h(
    "binance", "BTC-USDT", W - 86_400_000_000, W, 59_000.0, 61_000.0, 58_000.0, 60_005.0,
    0.5, 58_900.0, 10.0, 600_000.0, 42, 1, 42,
)  # fmt: skip


@pytest_asyncio.fixture
async def broadcaster(tmp_path: Path) -> AsyncIterator[tuple[CommitBroadcaster, int]]:
    store = EmbeddedStore(tmp_path / "data")
    published = CommitBroadcaster()
    app = create_app(embedded_backend(store, healthy, published), ApiSettings())
    async with serving(app) as port:
        yield published, port
    store.close()


async def _open(port: int, streams: str) -> ClientConnection:
    # SUBSCRIBE rather than the path: a path segment without "@" (alerts) is a listen key.
    ws = await connect(f"ws://127.0.0.1:{port}/stream?provisional=true")
    request = {"method": "SUBSCRIBE", "params": streams.split("/"), "id": 1}
    await ws.send(msgspec.json.encode(request).decode())
    assert msgspec.json.decode(await asyncio.wait_for(ws.recv(), 5)) == {"result": None, "id": 1}
    return ws


async def test_a_book_ticker_leaves_provisionally_and_an_alert_only_once_durable(
    broadcaster: tuple[CommitBroadcaster, int],
) -> None:
    published, port = broadcaster
    ws = await _open(port, "btcusdt@bookTicker/alerts")
    batch = CommitBatch(quotes=[QUOTE], alerts=[ALERT])
    published.publish_provisional(batch)
    book = await next_message(ws)
    assert book == {
        "stream": "btcusdt@bookTicker",
        "data": {"u": 1, "s": "BTCUSDT", "b": "60000.00000000", "B": "1.50000000",
                 "a": "60001.00000000", "A": "2.50000000", "provisional": True},
    }  # fmt: skip
    await no_message(ws, QUIET_S)  # the alert waits for the commit
    published.publish(batch)
    alert = await next_message(ws)
    assert alert["stream"] == "alerts" and alert["data"]["alert_id"] == "a1"
    assert alert["data"]["provisional"] is False
    await no_message(ws, QUIET_S)  # and the book ticker is not pushed again
    await ws.close()


async def test_a_ticker_is_read_from_the_store_only_after_the_commit(
    broadcaster: tuple[CommitBroadcaster, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[tuple[str, str]] = []

    def stats_24h(self: MarketView, exchange: str, symbol: str) -> Stats24h:
        reads.append((exchange, symbol))
        return STATS

    monkeypatch.setattr(MarketView, "stats_24h", stats_24h)
    published, port = broadcaster
    ws = await _open(port, "btcusdt@kline_1m/btcusdt@miniTicker")
    batch = CommitBatch(candles=[OPEN_MINUTE])
    published.publish_provisional(batch)
    kline = await next_message(ws)
    assert kline["stream"] == "btcusdt@kline_1m" and kline["data"]["k"]["x"] is False
    await no_message(ws, QUIET_S)
    assert reads == []  # the store does not hold this batch yet
    published.publish(batch)
    mini = await next_message(ws)
    assert reads == [("binance", "BTC-USDT")]
    assert mini["stream"] == "btcusdt@miniTicker"
    assert {k: mini["data"][k] for k in ("e", "s", "c", "o", "n", "provisional")
            if k in mini["data"]} == {"e": "24hrMiniTicker", "s": "BTCUSDT",
                                       "c": "60005.00000000", "o": "59000.00000000",
                                       "provisional": False}  # fmt: skip
    await no_message(ws, QUIET_S)
    await ws.close()


async def test_a_batch_first_seen_at_its_commit_goes_out_whole_and_durable(
    broadcaster: tuple[CommitBroadcaster, int],
) -> None:
    published, port = broadcaster
    ws = await _open(port, "btcusdt@bookTicker/btcusdt@kline_1m/alerts")
    published.publish(CommitBatch(quotes=[QUOTE], candles=[OPEN_MINUTE], alerts=[ALERT]))
    got = [await next_message(ws) for _ in range(3)]
    assert [m["stream"] for m in got] == ["btcusdt@kline_1m", "btcusdt@bookTicker", "alerts"]
    assert [m["data"]["provisional"] for m in got] == [False, False, False]
    await no_message(ws, QUIET_S)
    await ws.close()
