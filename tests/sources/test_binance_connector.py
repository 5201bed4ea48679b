"""BinanceConnector against a small local fake of Binance's combined streams and REST."""

import asyncio
import json

import pytest

from marketpipe.observability.metrics import REGISTRY
from marketpipe.sources.binance.connector import BinanceConnector
from tests.sources.fake_binance import FakeBinance, Sink, fast_settings, running, wait_until

pytestmark = pytest.mark.integration


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def consecutive(ids: list[int]) -> bool:
    return ids == list(range(ids[0], ids[0] + len(ids)))


async def test_live_trades_and_quotes_are_emitted_with_normalized_symbols(
    fake: FakeBinance, sink: Sink
) -> None:
    connector = BinanceConnector(fast_settings(fake), ["BTC-USDT", "ETHUSDT"], sink)
    async with running(connector):
        await wait_until(lambda: len(fake.open_connections) == 1)
        await fake.trade("BTCUSDT", 3)
        await fake.trade("ETHUSDT", 2)
        await fake.quote("ETHUSDT")
        await wait_until(lambda: len(sink.records) == 6)
    assert sink.trade_ids("BTC-USDT") == [1000, 1001, 1002]
    assert sink.trade_ids("ETH-USDT") == [1000, 1001]
    first = sink.trades("BTC-USDT")[0]
    assert (first.exchange, first.side, first.ts_event % 1000) == ("binance", "sell", 0)
    assert sink.quotes[0].symbol == "ETH-USDT" and sink.quotes[0].bid == 99.5
    assert sorted(fake.connections[0].query_streams) == sorted(
        ["btcusdt@trade", "btcusdt@bookTicker", "ethusdt@trade", "ethusdt@bookTicker"]
    )
    assert connector.status().symbols["BTC-USDT"].last_trade_id == 1002


async def test_server_dropping_the_connection_leads_to_reconnect_and_catch_up(
    fake: FakeBinance, sink: Sink
) -> None:
    connector = BinanceConnector(fast_settings(fake), ["BTC-USDT"], sink)
    async with running(connector):
        await wait_until(lambda: len(fake.open_connections) == 1)
        await fake.trade(n=5)
        await wait_until(lambda: len(sink.trade_ids()) == 5)
        await fake.drop_all()
        await fake.trade(n=7, deliver=False)  # happen while we are disconnected
        await wait_until(lambda: fake.connections_opened == 2 and len(fake.open_connections) == 1)
        await wait_until(lambda: len(sink.trade_ids()) == 12)  # catch-up over REST
        await fake.trade(n=3)
        await wait_until(lambda: len(sink.trade_ids()) == 15)
        status = connector.status()
    ids = sink.trade_ids()
    assert ids == list(range(1000, 1015))
    assert status.reconnects >= 1 and status.connections[0].reconnects.get("closed", 0) >= 1
    sym = status.symbols["BTC-USDT"]
    assert (sym.gaps_found, sym.gaps_filled, sym.backfilled) == (1, 1, 7)


async def test_gap_in_live_ids_is_backfilled_exactly(fake: FakeBinance, sink: Sink) -> None:
    filled_before = metric("gaps_filled_total", exchange="binance", symbol="BTC-USDT")
    connector = BinanceConnector(fast_settings(fake, backfill_page_size=4), ["BTC-USDT"], sink)
    async with running(connector):
        await wait_until(lambda: len(fake.open_connections) == 1)
        await fake.trade(n=2)
        await fake.trade(n=10, deliver=False)  # the stream loses ten trades
        await fake.trade(n=2)
        await wait_until(lambda: len(sink.trade_ids()) == 14)
        status = connector.status().symbols["BTC-USDT"]
    ids = sink.trade_ids()
    assert ids[:3] == [1000, 1001, 1012]  # the trade that revealed the gap goes out at once
    assert sorted(ids) == list(range(1000, 1014)) and len(set(ids)) == len(ids)
    assert (status.gaps_found, status.gaps_filled, status.backfilled) == (1, 1, 10)
    # Paged by backfill_page_size=4: 4 + 4 + 2, and never past the gap's end.
    pages = [c for c in fake.rest_calls if c[0] == "historicalTrades"]
    assert [(p[1]["fromId"], p[1]["limit"]) for p in pages] == [
        ("1002", "4"),
        ("1006", "4"),
        ("1010", "2"),
    ]
    assert metric("gaps_filled_total", exchange="binance", symbol="BTC-USDT") == filled_before + 1


async def test_restart_from_start_positions_backfills_what_was_missed(
    fake: FakeBinance, sink: Sink
) -> None:
    await fake.trade(n=30, deliver=False)  # ids 1000..1029 happened before we started
    connector = BinanceConnector(
        fast_settings(fake, backfill_page_size=10),
        ["BTC-USDT"],
        sink,
        start_positions={"BTC-USDT": 1009},
    )
    async with running(connector):
        await wait_until(lambda: len(sink.trade_ids()) == 20)
        await fake.trade(n=2)
        await wait_until(lambda: len(sink.trade_ids()) == 22)
    assert sink.trade_ids() == list(range(1010, 1032))


async def test_restart_backfills_holes_left_below_the_stored_position(
    fake: FakeBinance, sink: Sink
) -> None:
    # A crash between finding a gap and committing its back-fill leaves a hole (1003..1005)
    # below the stored position (1009); the restart fetches it, not only what follows 1009.
    await fake.trade(n=10, deliver=False)  # ids 1000..1009
    connector = BinanceConnector(
        fast_settings(fake),
        ["BTC-USDT"],
        sink,
        start_positions={"BTC-USDT": 1009},
        start_holes={"BTC-USDT": [(1003, 1005)]},
    )
    async with running(connector):
        await wait_until(lambda: len(sink.trade_ids()) == 3)
    assert sorted(sink.trade_ids()) == [1003, 1004, 1005]


async def test_restart_catch_up_stops_at_the_first_live_id(fake: FakeBinance, sink: Sink) -> None:
    await fake.trade(n=5, deliver=False)
    fake.rest_faults = [(500, {})]  # slow the catch-up so live trades arrive first
    connector = BinanceConnector(
        fast_settings(fake), ["BTC-USDT"], sink, start_positions={"BTC-USDT": 999}
    )
    async with running(connector):
        await wait_until(lambda: len(fake.open_connections) == 1)
        await fake.trade(n=3)  # 1005..1007 live
        await wait_until(lambda: len(sink.trade_ids()) == 8)
        await asyncio.sleep(0.1)
    ids = sink.trade_ids()
    assert sorted(ids) == list(range(1000, 1008)) and len(set(ids)) == 8


async def test_streams_are_sharded_by_max_streams_per_connection(
    fake: FakeBinance, sink: Sink
) -> None:
    fake.symbols = {
        "BTCUSDT": ("BTC", "USDT"),
        "ETHUSDT": ("ETH", "USDT"),
        "SOLUSDT": ("SOL", "USDT"),
    }
    fake.log["SOLUSDT"] = []
    fake.next_id["SOLUSDT"] = 1000
    settings = fast_settings(fake, max_streams_per_connection=2)
    connector = BinanceConnector(settings, ["BTC-USDT", "ETH-USDT", "SOL-USDT"], sink)
    async with running(connector):
        await wait_until(lambda: len(fake.open_connections) == 3)
        for native in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
            await fake.trade(native)
        await wait_until(lambda: len(sink.records) == 3)
        status = connector.status()
    assert status.connections_open == 3
    assert all(len(c.query_streams) == 2 for c in fake.connections)
    assert sorted(s for c in fake.connections for s in c.query_streams) == sorted(
        f"{n}@{k}" for n in ("btcusdt", "ethusdt", "solusdt") for k in ("trade", "bookTicker")
    )


async def test_silent_connection_is_replaced_by_the_watchdog(fake: FakeBinance, sink: Sink) -> None:
    fake.silent = True
    connector = BinanceConnector(fast_settings(fake, silence_timeout_s=0.3), ["BTC-USDT"], sink)
    async with running(connector):
        await wait_until(lambda: fake.connections_opened >= 2, within=3)
        fake.silent = False
        await wait_until(
            lambda: connector.status().connections[0].reconnects.get("silence", 0) >= 1
        )
        await wait_until(lambda: any(c.streams for c in fake.open_connections), within=3)
        await fake.trade()
        await wait_until(lambda: sink.trade_ids() == [1000])


async def test_malformed_frames_become_dead_letters_and_the_feed_continues(
    fake: FakeBinance, sink: Sink
) -> None:
    dead_before = metric("dead_letters_total", source="binance")
    connector = BinanceConnector(fast_settings(fake), ["BTC-USDT"], sink)
    async with running(connector):
        await wait_until(lambda: len(fake.open_connections) == 1)
        await fake.trade()
        await fake.send("this is not json")
        bad_price = {
            "stream": "btcusdt@trade",
            "data": {
                "e": "trade",
                "s": "BTCUSDT",
                "t": 1001,
                "p": "-1",
                "q": "1",
                "T": 1,
                "m": False,
            },
        }
        await fake.send(json.dumps(bad_price))
        await fake.send(json.dumps({"stream": "btcusdt@kline_1m", "data": {"e": "kline"}}))
        await fake.trade()
        await wait_until(lambda: len(sink.records) == 5)
        assert len(fake.open_connections) == 1 and fake.connections_opened == 1
    assert [type(r).__name__ for r in sink.records] == [
        "Trade",
        "DeadLetter",
        "DeadLetter",
        "DeadLetter",
        "Trade",
    ]
    letter = sink.dead_letters[0]
    assert letter.raw == b"this is not json" and letter.source == "binance"
    assert letter.context.startswith("ws:binance-ws-0")
    assert "price" in sink.dead_letters[1].error
    assert metric("dead_letters_total", source="binance") == dead_before + 3
    assert connector.status().dead_letters == 3


async def test_server_shutdown_event_triggers_a_reconnect_without_losing_trades(
    fake: FakeBinance, sink: Sink
) -> None:
    connector = BinanceConnector(fast_settings(fake), ["BTC-USDT"], sink)
    async with running(connector):
        await wait_until(lambda: len(fake.open_connections) == 1)
        await fake.trade(n=2)
        await fake.send(json.dumps({"e": "serverShutdown", "E": 1}))
        await wait_until(lambda: fake.connections_opened == 2 and len(fake.open_connections) == 1)
        await fake.trade(n=2)
        await wait_until(lambda: len(sink.trade_ids()) == 4)
        status = connector.status()
    assert sink.trade_ids() == [1000, 1001, 1002, 1003]
    assert status.connections[0].reconnects == {"server_shutdown": 1}


async def test_planned_rotation_opens_the_new_connection_before_closing_the_old(
    fake: FakeBinance, sink: Sink
) -> None:
    gauge_before = metric("producer_websocket_connections", exchange="binance")
    connector = BinanceConnector(fast_settings(fake, reconnect_after_s=0.4), ["BTC-USDT"], sink)
    async with running(connector):
        await wait_until(lambda: len(fake.open_connections) == 1)
        for _ in range(60):  # ~1.2 s of steady trading across two or more rotations
            await fake.trade()
            await asyncio.sleep(0.02)
        await wait_until(lambda: len(sink.trade_ids()) == 60)
        status = connector.status()
    assert sink.trade_ids() == list(range(1000, 1060))  # nothing lost, nothing twice
    assert status.connections[0].reconnects.get("rotation", 0) >= 2
    assert status.symbols["BTC-USDT"].gaps_found == 0
    assert fake.max_open == 2  # each new connection opened while the old one was up
    # Every connection opened was closed again, rotations and shutdown included.
    assert metric("producer_websocket_connections", exchange="binance") == gauge_before


async def test_long_stream_lists_subscribe_with_paced_messages(
    fake: FakeBinance, sink: Sink
) -> None:
    names = [f"C{i:03d}USDT" for i in range(60)]
    fake.symbols = {n: (n[:-4], "USDT") for n in names}
    fake.log = {n: [] for n in names}
    fake.next_id = dict.fromkeys(names, 1000)
    settings = fast_settings(fake, max_messages_per_second=5)
    connector = BinanceConnector(settings, [f"{n[:-4]}-USDT" for n in names], sink)
    async with running(connector):
        await wait_until(lambda: len(fake.open_connections) == 1)
        await wait_until(lambda: len(fake.connections[0].streams) == 120)
        await fake.trade("C059USDT")
        await wait_until(lambda: sink.trade_ids("C059-USDT") == [1000])
    conn = fake.connections[0]
    assert conn.query_streams == []  # a 120-stream URL is too long: SUBSCRIBE instead
    requests = [json.loads(m) for m in conn.received]
    assert [len(r["params"]) for r in requests] == [100, 20]


async def test_unreachable_rest_falls_back_to_local_symbol_normalization(
    fake: FakeBinance, sink: Sink
) -> None:
    fake.exchange_info_ok = False
    connector = BinanceConnector(fast_settings(fake), ["BTC-USDT"], sink)
    async with running(connector):
        await wait_until(lambda: len(fake.open_connections) == 1)
        await fake.trade()
        await wait_until(lambda: sink.trade_ids() == [1000])


async def test_dead_websocket_server_is_retried_without_raising(sink: Sink) -> None:
    fake = FakeBinance()  # never started: nothing listens on its port
    fake.port = 9  # discard port; connections are refused
    connector = BinanceConnector(fast_settings(fake, backoff_max_s=0.1), ["BTC-USDT"], sink)
    async with running(connector):
        await asyncio.sleep(0.5)
        status = connector.status()
    assert status.connections_open == 0 and sink.records == []
