"""Real Binance client libraries stream from our WebSocket during a `marketpipe demo` run,
unchanged but for their base URLs: binance-connector (Binance's own, threaded), python-binance
(`AsyncClient` + `BinanceSocketManager`) and ccxt.pro. Each connects the way it connects to
Binance (`/ws` then SUBSCRIBE, `/ws/<stream>?timeUnit=...`, `/stream?streams=...`, ccxt's
`/ws/0` then SUBSCRIBE), and the server's keepalive pings are answered by them, while a client
that never answers is closed."""

import asyncio
import base64
import json
import os
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from marketpipe.config import load_settings
from marketpipe.embedded.demo import demo
from marketpipe.embedded.live import LiveRun

pytestmark = [
    pytest.mark.integration,
    pytest.mark.asyncio(loop_scope="module"),
    # python-binance imports websockets' legacy client API; not ours to fix.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:binance"),
    pytest.mark.filterwarnings("ignore:websockets.legacy is deprecated:DeprecationWarning"),
]

SYMBOLS = ("BTCUSDT", "ETHUSDT")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveRun]:
    root = tmp_path_factory.mktemp("ws-clients")
    settings = load_settings(data_dir=root / "data", symbols=",".join(SYMBOLS), log_format="json")
    settings.api.port = 0
    ready: asyncio.Future[LiveRun] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        demo(settings, duration_s=240, trades_per_second=100, ready=ready.set_result)
    )
    run = await asyncio.wait_for(ready, 60)
    # Clients that load markets first (ccxt) need exchangeInfo to list the symbols: wait for
    # the first commits of both.
    async with httpx.AsyncClient() as http:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            info = (await http.get(f"http://127.0.0.1:{run.api_port}/api/v3/exchangeInfo")).json()
            if {s["symbol"] for s in info["symbols"]} >= set(SYMBOLS):
                break
            await asyncio.sleep(0.2)
    yield run
    run.stop()
    await asyncio.wait_for(task, 60)


def _host(run: LiveRun) -> str:
    return f"127.0.0.1:{run.api_port}"


def _check_trade(data: dict[str, Any], symbol: str, micros: bool = False) -> None:
    assert data["e"] == "trade" and data["s"] == symbol
    assert isinstance(data["t"], int) and float(data["p"]) > 0 and float(data["q"]) > 0
    now = time.time() * (1e6 if micros else 1e3)
    # Trade and event times in the unit asked for, within a minute of now.
    assert abs(data["T"] - now) < 60 * (1e6 if micros else 1e3)
    assert abs(data["E"] - now) < 60 * (1e6 if micros else 1e3)


def _check_kline(data: dict[str, Any], symbol: str) -> None:
    k = data["k"]
    assert data["e"] == "kline" and k["s"] == symbol and k["i"] == "1m"
    assert k["T"] == k["t"] + 59_999 and k["t"] % 60_000 == 0
    assert float(k["l"]) <= min(float(k["o"]), float(k["c"])) <= float(k["h"])
    assert k["n"] >= 1 and k["L"] >= k["f"]


def _check_ticker(data: dict[str, Any], symbol: str) -> None:
    assert data["e"] == "24hrTicker" and data["s"] == symbol
    assert float(data["l"]) <= float(data["c"]) <= float(data["h"]) and data["n"] > 0
    assert data["C"] > data["O"]


# ---- binance-connector (Binance's own Python connector) ------------------------------------


def _connector_collect(
    stream_url: str, subscribe: list[tuple[str, tuple[str, ...]]], want: set[str], timeout: float
) -> tuple[list[dict[str, Any]], int]:
    """Run SpotWebsocketStreamClient until every event type in `want` arrived; returns the
    messages and how many server pings it saw (it answers them itself)."""
    from binance.websocket.spot.websocket_stream import SpotWebsocketStreamClient

    messages: list[dict[str, Any]] = []
    pings = 0
    done = threading.Event()

    def on_message(_: Any, text: str) -> None:
        message = json.loads(text)
        messages.append(message)
        seen = {m.get("e") for m in messages} | {"reply" for m in messages if "result" in m}
        if want <= seen:
            done.set()

    def on_ping(_: Any, payload: bytes) -> None:
        nonlocal pings
        pings += 1

    client = SpotWebsocketStreamClient(
        stream_url=stream_url, on_message=on_message, on_ping=on_ping, timeout=30
    )
    try:
        for i, (method, args) in enumerate(subscribe):
            getattr(client, method)(*args, id=i + 1)
        done.wait(timeout)
    finally:
        client.stop()
    return messages, pings


async def test_binance_connector_subscribes_on_bare_ws_and_streams_all_three(
    live: LiveRun,
) -> None:
    messages, _ = await asyncio.to_thread(
        _connector_collect,
        f"ws://{_host(live)}",  # the library appends /ws
        [("trade", ("btcusdt",)), ("kline", ("btcusdt", "1m")), ("ticker", ("btcusdt",))],
        {"trade", "kline", "24hrTicker", "reply"},
        40,
    )
    replies = [m for m in messages if "result" in m]
    assert replies[:3] == [{"result": None, "id": i} for i in (1, 2, 3)]
    by_event = {m.get("e"): m for m in messages}
    _check_trade(by_event["trade"], "BTCUSDT")
    _check_kline(by_event["kline"], "BTCUSDT")
    _check_ticker(by_event["24hrTicker"], "BTCUSDT")
    assert all("stream" not in m for m in messages)  # /ws: raw payloads


async def test_binance_connector_combined_streams_arrive_wrapped(live: LiveRun) -> None:
    from binance.websocket.spot.websocket_stream import SpotWebsocketStreamClient

    got: list[dict[str, Any]] = []
    done = threading.Event()

    def on_message(_: Any, text: str) -> None:
        got.append(json.loads(text))
        if {m.get("stream") for m in got} >= {"ethusdt@miniTicker", "ethusdt@bookTicker"}:
            done.set()

    def run() -> None:
        client = SpotWebsocketStreamClient(
            stream_url=f"ws://{_host(live)}", on_message=on_message, is_combined=True
        )
        try:
            client.mini_ticker(symbol="ethusdt", id=5)
            client.book_ticker(symbol="ethusdt", id=6)
            done.wait(30)
        finally:
            client.stop()

    await asyncio.to_thread(run)
    data = {m["stream"]: m["data"] for m in got if "stream" in m}
    mini, book = data["ethusdt@miniTicker"], data["ethusdt@bookTicker"]
    assert mini["e"] == "24hrMiniTicker" and mini["s"] == "ETHUSDT"
    assert set(mini) == {"e", "E", "s", "c", "o", "h", "l", "v", "q"}
    assert set(book) == {"u", "s", "b", "B", "a", "A"} and float(book["b"]) <= float(book["a"])
    assert {"result": None, "id": 5} in got and {"result": None, "id": 6} in got


# ---- python-binance -----------------------------------------------------------------------


async def test_python_binance_socket_manager_streams_trades_klines_tickers(
    live: LiveRun,
) -> None:
    from binance import AsyncClient, BinanceSocketManager

    client = AsyncClient()
    client.API_URL = f"http://{_host(live)}/api"  # base URLs are attributes in python-binance
    try:
        assert await client.ping() == {}
        bsm = BinanceSocketManager(client)
        bsm.STREAM_URL = f"ws://{_host(live)}/"
        async with bsm.trade_socket("BTCUSDT") as socket:  # /ws/btcusdt@trade
            _check_trade(await asyncio.wait_for(socket.recv(), 20), "BTCUSDT")
        async with bsm.kline_socket("ETHUSDT") as socket:  # /ws/ethusdt@kline_1m
            _check_kline(await asyncio.wait_for(socket.recv(), 20), "ETHUSDT")
        async with bsm.symbol_ticker_socket("BTCUSDT") as socket:  # /ws/btcusdt@ticker
            _check_ticker(await asyncio.wait_for(socket.recv(), 20), "BTCUSDT")
        streams = ["btcusdt@trade", "ethusdt@kline_1m"]
        async with bsm.multiplex_socket(streams) as socket:  # /stream?streams=a/b
            seen: dict[str, dict[str, Any]] = {}
            while set(seen) != set(streams):
                message = await asyncio.wait_for(socket.recv(), 20)
                seen[message["stream"]] = message["data"]
        _check_trade(seen["btcusdt@trade"], "BTCUSDT")
        _check_kline(seen["ethusdt@kline_1m"], "ETHUSDT")
    finally:
        await client.close_connection()


async def test_python_binance_time_unit_microsecond_gives_microsecond_times(
    live: LiveRun,
) -> None:
    from binance import AsyncClient, BinanceSocketManager

    client = AsyncClient(time_unit="MICROSECOND")  # appends ?timeUnit=MICROSECOND
    try:
        bsm = BinanceSocketManager(client)
        bsm.STREAM_URL = f"ws://{_host(live)}/"
        async with bsm.trade_socket("ETHUSDT") as socket:
            trade = await asyncio.wait_for(socket.recv(), 20)
        _check_trade(trade, "ETHUSDT", micros=True)
    finally:
        await client.close_connection()


# ---- ccxt.pro -----------------------------------------------------------------------------


async def test_ccxt_pro_watches_trades_ohlcv_and_ticker(live: LiveRun) -> None:
    import ccxt.pro as ccxtpro

    # Our venue has spot markets only, so ccxt loads no futures markets (it would ask
    # fapi/dapi hosts for them).
    exchange = ccxtpro.binance({"options": {"fetchMarkets": {"types": ["spot"]}}})
    exchange.urls["api"]["public"] = f"http://{_host(live)}/api/v3"
    exchange.urls["api"]["ws"]["spot"] = f"ws://{_host(live)}/ws"  # it connects to /ws/0
    try:
        await exchange.load_markets()
        assert {"BTC/USDT", "ETH/USDT"} <= set(exchange.markets)
        trades = await asyncio.wait_for(exchange.watch_trades("BTC/USDT"), 20)
        assert trades and all(t["symbol"] == "BTC/USDT" and t["price"] > 0 for t in trades)
        more = await asyncio.wait_for(exchange.watch_trades("BTC/USDT"), 20)
        assert int(more[-1]["id"]) > int(trades[0]["id"])
        candles = await asyncio.wait_for(exchange.watch_ohlcv("ETH/USDT", "1m"), 20)
        open_ms, o, h, low, c, volume = candles[-1]
        assert open_ms % 60_000 == 0 and low <= min(o, c) <= max(o, c) <= h and volume > 0
        ticker = await asyncio.wait_for(exchange.watch_ticker("BTC/USDT"), 20)
        assert ticker["symbol"] == "BTC/USDT" and ticker["last"] > 0
        assert ticker["low"] <= ticker["last"] <= ticker["high"]
    finally:
        await exchange.close()


# ---- keepalive ----------------------------------------------------------------------------


async def _silent_client(host: str, port: int, seconds: float) -> list[tuple[float, int, bytes]]:
    """A WebSocket client that never answers pings: the frames it got, as (seconds since
    connect, opcode, payload), until the server closed the connection or `seconds` passed."""
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    start = time.monotonic()
    frames: list[tuple[float, int, bytes]] = []
    try:
        while time.monotonic() - start < seconds:
            head = await asyncio.wait_for(reader.readexactly(2), seconds)
            length = head[1] & 0x7F
            if length == 126:
                length = int.from_bytes(await reader.readexactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await reader.readexactly(8), "big")
            frames.append(
                (time.monotonic() - start, head[0] & 0x0F, await reader.readexactly(length))
            )
            if head[0] & 0x0F == 0x8:  # close
                break
    except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
        pass
    finally:
        writer.close()
    return frames


async def test_server_pings_every_20_s_and_closes_a_client_that_never_pongs(
    live: LiveRun,
) -> None:
    silent, (messages, pings) = await asyncio.gather(
        _silent_client("127.0.0.1", live.api_port, 75),
        asyncio.to_thread(
            _connector_collect,
            f"ws://{_host(live)}",
            [("trade", ("ethusdt",))],
            {"never"},  # collect for the whole time
            45,
        ),
    )
    pings_at = [t for t, opcode, _ in silent if opcode == 0x9]
    assert pings_at and 15 <= pings_at[0] <= 25, silent
    closes = [(t, payload) for t, opcode, payload in silent if opcode == 0x8]
    assert closes, f"the server kept a client that never answered a ping: {silent}"
    closed_at, payload = closes[0]
    assert int.from_bytes(payload[:2], "big") == 1011  # keepalive ping timeout
    assert closed_at <= 65  # Binance: disconnected within a minute without a pong
    # The connector answers each ping and keeps streaming past the deadline.
    assert pings >= 2
    trades = [m for m in messages if m.get("e") == "trade"]
    assert trades and trades[-1]["E"] - trades[0]["E"] > 40_000
