"""Binance's WebSocket Streams protocol as our server speaks it: the request replies (exact
codes and messages, `id` echo), the paths Binance accepts, `?timeUnit=`, and a slow client
dropped once. The socket tests run the real app under uvicorn and publish batches into its
broadcaster, as the engine does after a commit."""

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from harness.app_server import serving
from marketpipe.bus.broadcast import CommitBroadcaster
from marketpipe.model.batch import CommitBatch
from marketpipe.model.records import Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.serving import ws_binance
from marketpipe.serving.app import create_app
from marketpipe.serving.backend import embedded_backend
from marketpipe.serving.settings import ApiSettings
from marketpipe.serving.ws_protocol import Session, StreamError, path_streams, time_unit
from marketpipe.storage.embedded import EmbeddedStore
from tests.serving.conftest import healthy

METHODS = "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"


def ask(session: Session, request: Any) -> dict[str, Any]:
    text = request if isinstance(request, str) else msgspec.json.encode(request).decode()
    return session.handle(text)


# ---- requests and replies -------------------------------------------------------------------


def test_subscribe_list_unsubscribe_echo_the_id_and_keep_subscription_order() -> None:
    s = Session(combined=False)
    assert ask(s, {"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1}) == {
        "result": None, "id": 1,
    }  # fmt: skip
    # Alphanumeric ids up to 36 and null are Binance's other id forms; a missing id is null.
    assert ask(s, {"method": "SUBSCRIBE", "params": ["ethusdt@kline_1m", "btcusdt@trade"],
                   "id": "a" * 36}) == {"result": None, "id": "a" * 36}  # fmt: skip
    assert ask(s, {"method": "LIST_SUBSCRIPTIONS", "id": None}) == {
        "result": ["btcusdt@trade", "ethusdt@kline_1m"], "id": None,
    }  # fmt: skip
    assert ask(s, {"method": "UNSUBSCRIBE", "params": ["btcusdt@trade"]}) == {
        "result": None, "id": None,
    }  # fmt: skip
    assert ask(s, {"method": "LIST_SUBSCRIPTIONS", "id": -(2**63)}) == {
        "result": ["ethusdt@kline_1m"], "id": -(2**63),
    }  # fmt: skip


@pytest.mark.parametrize("rid", [1.5, True, "a" * 37, "has space", 2**63, {"x": 1}])
def test_an_id_binance_refuses_is_refused_with_its_message(rid: Any) -> None:
    s = Session(combined=False)
    reply = ask(s, {"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": rid})
    assert reply == {
        "error": {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"},
        "id": None,
    }
    assert s.streams == []


def test_bad_requests_get_binance_codes_and_messages() -> None:
    s = Session(combined=True)
    assert ask(s, {"method": "SUBSCRIBER", "id": 4}) == {
        "error": {"code": 2, "msg": f"Invalid request: unknown variant `SUBSCRIBER`, "
                                    f"expected one of {METHODS}"},
        "id": 4,
    }  # fmt: skip
    assert ask(s, {"params": [], "id": 5}) == {
        "error": {"code": 2, "msg": "Invalid request: missing field `method`"}, "id": 5,
    }  # fmt: skip
    assert ask(s, "{not json") == {
        "error": {"code": 3, "msg": "Invalid JSON: expecting property name enclosed in "
                                    "double quotes at line 1 column 2"},
    }  # fmt: skip
    assert ask(s, "[1]") == {"error": {"code": 2, "msg": "Invalid request: expected a JSON object"}}
    assert ask(s, {"method": "SUBSCRIBE", "params": "btcusdt@trade", "id": 6})["error"] == {
        "code": 2, "msg": "Invalid request: `params` must be an array",
    }  # fmt: skip
    assert ask(s, {"method": "LIST_SUBSCRIPTIONS", "params": ["x"], "id": 7})["error"] == {
        "code": 2, "msg": "Invalid request: too many parameters",
    }  # fmt: skip


def test_properties_as_binance_sets_and_reports_them() -> None:
    s = Session(combined=False)
    assert ask(s, {"method": "GET_PROPERTY", "params": ["combined"], "id": 1}) == {
        "result": False, "id": 1,
    }  # fmt: skip
    assert ask(s, {"method": "SET_PROPERTY", "params": ["combined", True], "id": 2}) == {
        "result": None, "id": 2,
    }  # fmt: skip
    assert s.combined is True
    assert ask(s, {"method": "SET_PROPERTY", "params": ["combined", 1], "id": 3}) == {
        "error": {"code": 1, "msg": "Invalid value type: expected Boolean"}, "id": 3,
    }  # fmt: skip
    assert ask(s, {"method": "GET_PROPERTY", "params": ["compressed"], "id": 4}) == {
        "error": {"code": 0, "msg": "Unknown property"}, "id": 4,
    }  # fmt: skip
    assert ask(s, {"method": "GET_PROPERTY", "params": [7], "id": 5})["error"] == {
        "code": 2, "msg": "Invalid request: property name must be a string",
    }  # fmt: skip
    assert s.combined is True


@pytest.mark.parametrize(
    ("stream", "says"),
    [
        ("nonsense", "Invalid request: invalid stream 'nonsense'; streams are <symbol>@trade"),
        ("btcusdt@depth", "Invalid request: invalid stream 'btcusdt@depth'; streams are"),
        ("BTCUSDT@trade", "Invalid request: invalid stream 'BTCUSDT@trade'; streams are"),
        (
            "btcusdt@kline_3m",
            "Invalid request: invalid stream 'btcusdt@kline_3m': kline intervals served here "
            "are 1m, 5m, 15m, 1h, 4h, 1d",
        ),
    ],
)
def test_a_stream_we_do_not_serve_is_named_and_nothing_is_subscribed(
    stream: str, says: str
) -> None:
    s = Session(combined=False)
    reply = ask(s, {"method": "SUBSCRIBE", "params": ["btcusdt@trade", stream], "id": 9})
    assert reply["id"] == 9 and reply["error"]["code"] == 2
    assert reply["error"]["msg"].startswith(says)
    assert s.streams == []  # all or nothing, as one request


def test_path_segments_without_at_are_listen_keys_and_serve_nothing() -> None:
    assert path_streams(["0"]) == []  # ccxt's /ws/0
    assert path_streams(["", "btcusdt@trade", "ethusdt@aggTrade", ""]) == [
        "btcusdt@trade",
        "ethusdt@aggTrade",
    ]
    with pytest.raises(StreamError, match="invalid stream 'btcusdt@nope'"):
        path_streams(["btcusdt@nope"])


def test_time_unit_takes_binance_values_in_any_case() -> None:
    assert time_unit(None) is False
    assert time_unit("MILLISECOND") is False and time_unit("microsecond") is True
    with pytest.raises(StreamError, match="timeUnit 'NANOSECOND': expected MILLISECOND or"):
        time_unit("NANOSECOND")


# ---- over a real socket ---------------------------------------------------------------------


class Served:
    def __init__(self, port: int, broadcaster: CommitBroadcaster) -> None:
        self.url = f"ws://127.0.0.1:{port}"
        self.broadcaster = broadcaster

    def publish_trades(self, first_id: int, count: int, symbol: str = "BTC-USDT") -> None:
        ts = 1_723_161_600_123_456
        trades = [
            Trade("binance", symbol, first_id + i, 60_000.5, 0.25, "sell", ts + i, ts + i)
            for i in range(count)
        ]
        self.broadcaster.publish(CommitBatch(trades=to_table(trades, TRADE_SCHEMA)))


@pytest_asyncio.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    store = EmbeddedStore(tmp_path / "data")  # empty: these streams need no stored data
    broadcaster = CommitBroadcaster()
    app = create_app(embedded_backend(store, healthy, broadcaster), ApiSettings())
    async with serving(app) as port:
        yield Served(port, broadcaster)
    store.close()


async def _request(ws: ClientConnection, request: dict[str, Any]) -> dict[str, Any]:
    await ws.send(msgspec.json.encode(request).decode())
    return msgspec.json.decode(await asyncio.wait_for(ws.recv(), 5))  # type: ignore[no-any-return]


async def _next(ws: ClientConnection) -> dict[str, Any]:
    return msgspec.json.decode(await asyncio.wait_for(ws.recv(), 5))  # type: ignore[no-any-return]


PATHS = [("/ws", False), ("/ws/", False), ("/ws/0", False),
         ("/stream", True), ("/stream/", True), ("/stream?streams=", True)]  # fmt: skip


@pytest.mark.parametrize(("path", "combined"), PATHS)
async def test_every_path_binance_accepts_opens_then_subscribe_streams(
    served: Served, path: str, combined: bool
) -> None:
    async with connect(served.url + path) as ws:
        assert await _request(
            ws, {"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1}
        ) == {"result": None, "id": 1}
        served.publish_trades(100, 1)
        message = await _next(ws)
    trade = {"e": "trade", "s": "BTCUSDT", "t": 100, "p": "60000.50000000", "q": "0.25000000",
             "T": 1_723_161_600_123, "m": True, "M": True}  # fmt: skip
    data = message["data"] if combined else message
    assert message.get("stream") == ("btcusdt@trade" if combined else None)
    assert {k: v for k, v in data.items() if k != "E"} == trade


async def test_time_unit_microsecond_and_agg_trades_on_the_path(served: Served) -> None:
    async with connect(served.url + "/ws/btcusdt@aggTrade?timeUnit=MICROSECOND") as ws:
        await _request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 2})  # the session is up
        served.publish_trades(7, 1)
        agg = await _next(ws)
    assert agg["e"] == "aggTrade" and agg["T"] == 1_723_161_600_123_456
    assert (agg["a"], agg["f"], agg["l"]) == (7, 7, 7)
    assert agg["E"] > 1_700_000_000_000_000  # µs too


@pytest.mark.parametrize(
    ("path", "msg"),
    [
        ("/ws/btcusdt@nope", "Invalid request: invalid stream 'btcusdt@nope'"),
        ("/ws?timeUnit=NANOSECOND", "Invalid request: timeUnit 'NANOSECOND'"),
        ("/stream?streams=btcusdt@trade/ethusdt@kline_2m", "Invalid request: invalid stream"),
    ],
)
async def test_a_path_we_cannot_serve_is_answered_then_closed(
    served: Served, path: str, msg: str
) -> None:
    async with connect(served.url + path) as ws:
        reply = await _next(ws)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert reply["error"]["code"] == 2 and reply["error"]["msg"].startswith(msg)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_a_slow_client_is_dropped_once_and_the_others_keep_streaming(
    served: Served, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(ws_binance, "OUTBOX", 5)
    caplog.set_level(logging.WARNING, logger="marketpipe.serving.ws_binance")
    async with connect(served.url + "/ws/btcusdt@trade") as slow:
        await _request(slow, {"method": "LIST_SUBSCRIPTIONS", "id": 1})
        monkeypatch.setattr(ws_binance, "OUTBOX", 10_000)
        async with connect(served.url + "/ws/btcusdt@trade") as fresh:
            await _request(fresh, {"method": "LIST_SUBSCRIPTIONS", "id": 1})
            # One commit of 1,000 trades: 995 of them find the slow client's outbox full.
            served.publish_trades(1, 1000)
            got = [(await _next(fresh))["t"] for _ in range(1000)]
            assert got == list(range(1, 1001))
            received = 0
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(slow.recv(), 5)
                    received += 1
    assert received <= 5
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason == "slow client: outbox full"
    drops = [r for r in caplog.records if "dropping a slow websocket client" in r.getMessage()]
    assert len(drops) == 1, [r.getMessage() for r in drops]
