"""Provisional pushes: a batch's trades and open klines reach a real WebSocket client of the
real API (uvicorn) while the store's commit is still blocked; closed klines only once it has
returned; nothing twice; a failed commit after a provisional push is logged, announced and
ends only the batch (the server keeps serving); and in a live run against the simulated
exchange, the trades of a batch whose commit failed come again, same ids, after a restart."""

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect

from harness.app_server import serving
from harness.ws_client import next_message, no_message
from marketpipe.bus.broadcast import CommitBroadcaster
from marketpipe.config import Settings
from marketpipe.embedded.demo import point_at
from marketpipe.embedded.live import LiveRun
from marketpipe.embedded.pipeline import Pipeline
from marketpipe.model.batch import CommitBatch
from marketpipe.model.errors import StorageError
from marketpipe.model.records import Candle, Position, Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.serving.app import create_app
from marketpipe.serving.backend import embedded_backend
from marketpipe.serving.settings import ApiSettings
from marketpipe.simulator import SimulatedExchange, SyntheticMarket
from marketpipe.storage.embedded import EmbeddedStore
from tests.serving.conftest import healthy

pytestmark = pytest.mark.integration

W = 1_723_161_600_000_000  # 2024-08-09 00:00:00 UTC: a 1m window opens here
MINUTE = 60_000_000
STREAMS = "/stream?streams=btcusdt@trade/btcusdt@kline_1m&provisional=true"
QUIET_S = 0.4  # how long "nothing more arrives" is watched for


class GatedSink:
    """The real embedded store behind a gate: a commit waits while the test holds the gate
    closed, then commits (or raises `fail`)."""

    def __init__(self, store: EmbeddedStore) -> None:
        self.store = store
        self.gate = threading.Event()
        self.gate.set()
        self.returned = 0
        self.fail: Exception | None = None

    def positions(self) -> list[Position]:
        return self.store.positions()

    def open_windows(self, min_close_time: int) -> list[tuple[Candle, int, int]]:
        return self.store.open_windows(min_close_time)

    def commit(self, batch: CommitBatch) -> int:
        if not self.gate.wait(20):
            raise TimeoutError("the test never opened the gate")
        if self.fail is not None:
            raise self.fail
        seq = self.store.commit(batch)
        self.returned += 1
        return seq


@dataclass
class Served:
    url: str
    sink: GatedSink
    pipeline: Pipeline
    broadcaster: CommitBroadcaster


@pytest_asyncio.fixture
async def served(settings: Settings) -> AsyncIterator[Served]:
    store = EmbeddedStore(settings.data_dir)
    broadcaster = CommitBroadcaster()
    sink = GatedSink(store)
    # Wired as LiveRun wires it: fold -> provisional, commit -> durable, failure -> abandon.
    pipeline = Pipeline(
        settings,
        sink,
        broadcaster.publish,
        on_fold=broadcaster.publish_provisional,
        on_commit_failed=broadcaster.abandon,
    )
    app = create_app(embedded_backend(store, healthy, broadcaster), ApiSettings())
    async with serving(app) as port:
        yield Served(f"ws://127.0.0.1:{port}", sink, pipeline, broadcaster)
        sink.gate.set()
    store.close()


def _trades(specs: list[tuple[int, float, float, str, int]]) -> list[Trade]:
    """(trade id, price, qty, taker side, µs after W) -> Binance BTC-USDT trades."""
    return [Trade("binance", "BTC-USDT", i, p, q, s, W + dt, W + dt) for i, p, q, s, dt in specs]


FIRST = _trades(
    [
        (1, 60_000.5, 0.25, "sell", 1_000_000),
        (2, 60_010.0, 0.50, "buy", 2_000_000),
        (3, 59_990.0, 0.10, "sell", 3_000_000),
    ]
)
# One trade of the next minute, past W's end plus the 2 s grace: it makes W final.
SECOND = _trades([(4, 60_020.0, 1.0, "buy", MINUTE + 3_000_000)])


def _expected_trade(t: Trade) -> dict[str, Any]:
    return {
        "e": "trade", "s": "BTCUSDT", "t": t.trade_id, "p": f"{t.price:.8f}",
        "q": f"{t.qty:.8f}", "T": t.ts_event // 1000, "m": t.side == "sell", "M": True,
        "provisional": True,
    }  # fmt: skip


def _expected_kline(trades: list[Trade], open_time: int, final: bool) -> dict[str, Any]:
    """The kline of `trades` computed here, independently of the engine."""
    ordered = sorted(trades, key=lambda t: (t.ts_event, t.trade_id))
    return {
        "t": open_time // 1000, "T": (open_time + MINUTE) // 1000 - 1,
        "f": ordered[0].trade_id, "L": ordered[-1].trade_id,
        "o": f"{ordered[0].price:.8f}", "c": f"{ordered[-1].price:.8f}",
        "h": f"{max(t.price for t in trades):.8f}", "l": f"{min(t.price for t in trades):.8f}",
        "v": f"{sum(t.qty for t in trades):.8f}", "n": len(trades), "x": final,
    }  # fmt: skip


async def _connected(served: Served, path: str = STREAMS) -> ClientConnection:
    ws = await connect(served.url + path)
    await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":1}')  # the session is up
    assert (await next_message(ws))["id"] == 1
    return ws


def _kline(message: dict[str, Any]) -> dict[str, Any]:
    k = message["data"]["k"]
    return {key: k[key] for key in ("t", "T", "f", "L", "o", "c", "h", "l", "v", "n", "x")}


def _ingest(served: Served, trades: list[Trade]) -> "asyncio.Task[CommitBatch]":
    table = to_table(trades, TRADE_SCHEMA)
    return asyncio.create_task(asyncio.to_thread(served.pipeline.ingest, table))


async def test_a_batch_reaches_the_client_while_its_commit_is_still_blocked(
    served: Served,
) -> None:
    ws = await _connected(served)
    served.sink.gate.clear()
    ingest = _ingest(served, FIRST)
    got = [await next_message(ws) for _ in range(4)]
    # All of it arrived while the commit had not returned.
    assert served.sink.returned == 0 and not ingest.done()
    streams = [m["stream"] for m in got]
    assert streams == ["btcusdt@trade"] * 3 + ["btcusdt@kline_1m"]
    trades = [{k: v for k, v in m["data"].items() if k != "E"} for m in got[:3]]
    assert trades == [_expected_trade(t) for t in FIRST]
    assert got[3]["data"]["provisional"] is True
    assert _kline(got[3]) == _expected_kline(FIRST, W, final=False)
    served.sink.gate.set()
    await ingest
    assert served.sink.returned == 1
    await no_message(ws, QUIET_S)  # the commit pushes nothing again: no final kline, no duplicate
    await ws.close()


async def test_a_final_kline_waits_for_its_commit_and_nothing_comes_twice(
    served: Served,
) -> None:
    ws = await _connected(served)
    await _ingest(served, FIRST)
    first = [await next_message(ws) for _ in range(4)]
    assert [m["data"].get("k", {}).get("x") for m in first] == [None, None, None, False]

    served.sink.gate.clear()
    ingest = _ingest(served, SECOND)
    early = [await next_message(ws) for _ in range(2)]
    assert [m["stream"] for m in early] == ["btcusdt@trade", "btcusdt@kline_1m"]
    assert early[0]["data"]["t"] == 4 and early[0]["data"]["provisional"] is True
    assert _kline(early[1]) == _expected_kline(SECOND, W + MINUTE, final=False)
    # W is final in this very batch, but its commit has not returned: no closed kline yet.
    await no_message(ws, QUIET_S)
    assert served.sink.returned == 1 and not ingest.done()

    served.sink.gate.set()
    batch = await ingest
    assert sorted((c.open_time, c.is_final) for c in batch.candles if c.interval == "1m") == [
        (W, True),
        (W + MINUTE, False),
    ]
    closed = await next_message(ws)
    assert closed["data"]["provisional"] is False
    assert _kline(closed) == _expected_kline(FIRST, W, final=True)
    await no_message(ws, QUIET_S)  # the trade and the open kline of this batch are not pushed again
    await ws.close()


async def test_a_batch_from_advance_idle_is_pushed_after_its_commit_only(
    served: Served,
) -> None:
    ws = await _connected(served)
    await _ingest(served, FIRST)
    assert len([await next_message(ws) for _ in range(4)]) == 4
    served.sink.gate.clear()
    # The exchange went quiet; the wall clock, ten minutes on, finalizes W.
    idle = asyncio.create_task(asyncio.to_thread(served.pipeline.advance_idle, W + 10 * MINUTE))
    await no_message(ws, QUIET_S)
    assert not idle.done()
    served.sink.gate.set()
    await idle
    closed = await next_message(ws)
    assert closed["data"]["provisional"] is False
    assert _kline(closed) == _expected_kline(FIRST, W, final=True)
    await no_message(ws, QUIET_S)
    await ws.close()


async def test_a_client_without_the_mark_gets_binance_payloads_unchanged(served: Served) -> None:
    ws = await _connected(served, "/ws/btcusdt@trade")
    await _ingest(served, FIRST[:1])
    trade = await next_message(ws)
    expected = _expected_trade(FIRST[0])
    del expected["provisional"]
    assert set(trade) == set(expected) | {"E"}
    assert {k: v for k, v in trade.items() if k != "E"} == expected
    await ws.close()


async def test_a_commit_failing_after_a_provisional_push_is_logged_and_the_server_lives_on(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="marketpipe.serving.ws_binance")
    ws = await _connected(served)
    served.sink.gate.clear()
    served.sink.fail = StorageError("batch commit failed and was rolled back: disk full")
    ingest = _ingest(served, FIRST)
    got = [await next_message(ws) for _ in range(4)]
    assert [m["data"]["provisional"] for m in got] == [True] * 4
    served.sink.gate.set()
    with pytest.raises(StorageError, match="disk full"):
        await ingest
    await no_message(ws, QUIET_S)  # no durable push for a batch that is not durable
    assert served.broadcaster.in_flight == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "3 trades and 6 candles were pushed provisionally but their commit failed "
        "(batch commit failed and was rolled back: disk full)"
    ]  # 6: the open 1m window and its 5m, 15m, 1h, 4h and 1d rollups
    # The API process carries on: the open connection and a new one are served.
    await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":2}')
    assert (await next_message(ws))["result"] == ["btcusdt@trade", "btcusdt@kline_1m"]
    again = await _connected(served, "/ws/btcusdt@trade")
    await again.close()
    await ws.close()


# ---- a live run: the lost batch comes again after a restart ---------------------------------


SYMBOLS = ["BTC-USDT", "ETH-USDT"]


def _live_settings(settings: Settings) -> Settings:
    binance = settings.binance.model_copy(
        update={"backoff_initial_s": 0.05, "backoff_max_s": 0.5, "silence_timeout_s": 2.0}
    )
    api = settings.api.model_copy(update={"port": 0})
    return settings.model_copy(update={"symbols": SYMBOLS, "binance": binance, "api": api})


async def test_trades_pushed_before_a_failed_commit_come_again_with_their_ids_after_restart(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _live_settings(settings)
    caplog.set_level(logging.ERROR, logger="marketpipe.embedded.live")
    pushed: dict[tuple[str, int], bool] = {}  # (native symbol, id) -> marked provisional
    lost: list[tuple[str, int]] = []
    stored_symbols: set[str] = set()
    commit = EmbeddedStore.commit

    def failing_once_a_client_listens(self: EmbeddedStore, batch: CommitBatch) -> int:
        # Once every symbol has a stored position: a restart resumes from it. (A symbol never
        # stored has none; its connector then starts at the first live trade.)
        if lost or not pushed or stored_symbols < set(SYMBOLS) or not batch.trades.num_rows:
            seq = commit(self, batch)
            stored_symbols.update(batch.trades.column("symbol").to_pylist())
            return seq
        symbols = [s.replace("-", "") for s in batch.trades.column("symbol").to_pylist()]
        lost.extend(zip(symbols, batch.trades.column("trade_id").to_pylist(), strict=True))
        deadline = time.monotonic() + 5  # until the client has seen this batch's trades
        while not any(key in pushed for key in lost) and time.monotonic() < deadline:
            time.sleep(0.01)
        raise StorageError("batch commit failed and was rolled back: No space left on device")

    async def listen(port: int) -> None:
        streams = "/".join(f"{s.replace('-', '').lower()}@trade" for s in SYMBOLS)
        async with connect(f"ws://127.0.0.1:{port}/ws/{streams}?provisional=true") as ws:
            async for message in ws:
                data = msgspec.json.decode(message)
                pushed[(data["s"], data["t"])] = data["provisional"]

    clients: list[asyncio.Task[None]] = []

    def ready(live: LiveRun) -> None:
        assert live.api_port is not None
        clients.append(asyncio.get_running_loop().create_task(listen(live.api_port)))

    async with SimulatedExchange(SyntheticMarket(SYMBOLS, 200, seed=13)) as exchange:
        with monkeypatch.context() as patched:
            patched.setattr(EmbeddedStore, "commit", failing_once_a_client_listens)
            with pytest.raises(StorageError, match="No space left"):
                await asyncio.wait_for(LiveRun(point_at(settings, exchange)).run(30.0, ready), 25)
        for client in clients:
            client.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        seen_lost = [key for key in lost if key in pushed]
        assert seen_lost, "the client saw trades of the batch whose commit failed"
        assert all(pushed[key] for key in seen_lost)  # and they were marked provisional
        # Restart on the same data dir: the connector back-fills from the stored positions.
        await LiveRun(point_at(settings, exchange)).run(4.0)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("a batch pushed provisionally was not committed" in e for e in errors), errors
    store = EmbeddedStore(settings.data_dir, read_only=True)
    try:
        stored = {
            (t.symbol.replace("-", ""), t.trade_id)
            for t in store.warm.trades(exchange=None, symbol=None, start=None, end=None, limit=None)
        }
    finally:
        store.close()
    assert set(lost) <= stored, sorted(set(lost) - stored)[:10]
