"""The generic connector running KrakenSpec end to end: a local fake speaking Kraken's WS v2 +
REST `Trades`, and the simulator's Kraken front with faults."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest

from marketpipe.model.records import Trade
from marketpipe.observability.metrics import REGISTRY
from marketpipe.simulator import FaultPlan
from marketpipe.simulator.kraken import KrakenFront
from marketpipe.sources.connector import VenueConnector
from marketpipe.sources.kraken.settings import KrakenSettings
from marketpipe.sources.kraken.spec import KrakenSpec
from tests.simulator.venue_clients import market
from tests.sources.fake_binance import Sink, wait_until
from tests.sources.fake_kraken import FakeKraken

pytestmark = pytest.mark.integration
BTC = "BTC-USD"


@pytest.fixture
async def kraken() -> AsyncIterator[FakeKraken]:
    server = await FakeKraken().start()
    try:
        yield server
    finally:
        await server.stop()


def fast(ws_url: str, rest_url: str, **overrides: object) -> KrakenSettings:
    values: dict[str, object] = {
        "ws_url": ws_url,
        "rest_url": rest_url,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "rate_limit_pause_s": 0.05,
        "silence_timeout_s": 5.0,
        "rest_timeout_s": 2.0,
        "max_messages_per_second": 5,
    }
    values.update(overrides)
    # Tests only: REST faster than Kraken's 1 request/s, which the validated field caps.
    return KrakenSettings.model_validate(values).model_copy(
        update={"rest_requests_per_second": 200.0}
    )


@contextlib.asynccontextmanager
async def running(connector: VenueConnector) -> AsyncIterator[VenueConnector]:
    task = asyncio.create_task(connector.run())
    try:
        yield connector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def subscribed(kraken: FakeKraken) -> bool:
    """The one open connection has both channels (acks for refused pairs come too)."""
    conns = kraken.open_connections
    return len(conns) == 1 and len(conns[0].received) == 2 and all(conns[0].channels.values())


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_live_trades_in_batched_frames_and_quotes(kraken: FakeKraken, sink: Sink) -> None:
    connector = VenueConnector(
        KrakenSpec(fast(kraken.ws_url, kraken.rest_url)), [BTC, "ETH/USD"], sink
    )
    async with running(connector):
        await wait_until(lambda: len(kraken.open_connections) == 1)
        await wait_until(lambda: len(kraken.open_connections[0].channels["ticker"]) == 2)
        await kraken.trade("XBTUSD", 3)  # one frame, three trades
        await kraken.trade("ETHUSD", 2)
        await kraken.quote("ETH/USD")
        await wait_until(lambda: len(sink.records) == 6)
    assert sink.trade_ids(BTC) == [5000, 5001, 5002]
    assert sink.trade_ids("ETH-USD") == [5000, 5001]
    first = sink.trades(BTC)[0]
    row = kraken.log["XBTUSD"][0]
    assert (first.exchange, first.price, first.ts_event) == (
        "kraken",
        float(row.price),
        row.time_us,
    )
    assert first.side == ("buy" if row.side == "b" else "sell")
    assert sink.quotes[0].symbol == "ETH-USD" and sink.quotes[0].ask == 100.5
    sent = kraken.connections[0].received
    assert [(m["params"]["channel"], m["params"]["symbol"]) for m in sent] == [
        ("trade", ["BTC/USD", "ETH/USD"]),
        ("ticker", ["BTC/USD", "ETH/USD"]),
    ]


async def test_gap_in_live_ids_is_backfilled_exactly(kraken: FakeKraken, sink: Sink) -> None:
    settings = fast(kraken.ws_url, kraken.rest_url, backfill_page_size=4)
    connector = VenueConnector(KrakenSpec(settings), [BTC], sink)
    async with running(connector):
        await wait_until(lambda: len(kraken.open_connections) == 1)
        await wait_until(lambda: subscribed(kraken))
        await kraken.trade(n=2)
        await kraken.trade(n=10, deliver=False)  # the stream loses ten trades
        await kraken.trade(n=2)
        await wait_until(lambda: len(sink.trade_ids(BTC)) == 14)
        status = connector.status().symbols[BTC]
    ids = sink.trade_ids(BTC)
    assert ids[:3] == [5000, 5001, 5012]
    assert sorted(ids) == list(range(5000, 5014)) and len(set(ids)) == 14
    truth = {r.trade_id: r for r in kraken.log["XBTUSD"]}
    assert all(t.ts_event == truth[t.trade_id].time_us for t in sink.trades(BTC))
    assert (status.gaps_found, status.gaps_filled, status.backfilled) == (1, 1, 10)
    # The first page starts a second before the last live trade (its time from the socket).
    assert int(kraken.rest_calls[0]["since"]) == truth[5001].time_ns - 10**9


async def test_reconnect_catches_up_over_rest(kraken: FakeKraken, sink: Sink) -> None:
    connector = VenueConnector(KrakenSpec(fast(kraken.ws_url, kraken.rest_url)), [BTC], sink)
    async with running(connector):
        await wait_until(lambda: len(kraken.open_connections) == 1)
        await wait_until(lambda: subscribed(kraken))
        await kraken.trade(n=5)
        await wait_until(lambda: len(sink.trade_ids(BTC)) == 5)
        await kraken.drop_all()
        await kraken.trade(n=7, deliver=False)  # while we are disconnected
        await wait_until(
            lambda: kraken.connections_opened == 2 and len(kraken.open_connections) == 1
        )
        await wait_until(lambda: subscribed(kraken))
        await wait_until(lambda: len(sink.trade_ids(BTC)) == 12)
        await kraken.trade(n=3)
        await wait_until(lambda: len(sink.trade_ids(BTC)) == 15)
        status = connector.status()
    assert sink.trade_ids(BTC) == list(range(5000, 5015))
    assert status.reconnects >= 1 and status.symbols[BTC].backfilled == 7


async def test_restart_from_a_stored_position_backfills_by_searching_time(
    kraken: FakeKraken, sink: Sink
) -> None:
    kraken.add("XBTUSD", 1500)  # ids 5000..6499 happened before we started
    settings = fast(kraken.ws_url, kraken.rest_url, locate_step_s=0.2)
    connector = VenueConnector(KrakenSpec(settings), [BTC], sink, start_positions={BTC: 5099})
    async with running(connector):
        await wait_until(lambda: len(sink.trade_ids(BTC)) == 1400, within=10)
        await wait_until(lambda: subscribed(kraken))
        await kraken.trade(n=2)
        await wait_until(lambda: len(sink.trade_ids(BTC)) == 1402)
    assert sink.trade_ids(BTC) == list(range(5100, 6502))


async def test_malformed_frame_is_dead_lettered_and_a_refused_pair_is_an_error(
    kraken: FakeKraken, sink: Sink
) -> None:
    errors_before = metric("producer_errors_total", exchange="kraken", reason="ws_error")
    kraken.refuse_pairs = {"ETH/USD"}
    connector = VenueConnector(
        KrakenSpec(fast(kraken.ws_url, kraken.rest_url)), [BTC, "ETH-USD"], sink
    )
    async with running(connector):
        await wait_until(lambda: len(kraken.open_connections) == 1)
        await wait_until(lambda: subscribed(kraken))
        bad = json.dumps({"channel": "trade", "type": "update", "data": [{"symbol": "BTC/USD"}]})
        await kraken.send(bad)
        await kraken.trade(n=1)
        await wait_until(lambda: len(sink.trade_ids(BTC)) == 1 and len(sink.dead_letters) == 1)
        status = connector.status()
    assert status.dead_letters == 1 and sink.dead_letters[0].raw == bad.encode()
    assert sink.dead_letters[0].source == "kraken"
    # Two refused acks (trade and ticker for ETH/USD): logged and counted, not fatal.
    assert (
        metric("producer_errors_total", exchange="kraken", reason="ws_error") == errors_before + 2
    )


async def test_against_the_simulated_kraken_with_faults_output_equals_ground_truth(
    sink: Sink,
) -> None:
    faults = FaultPlan(
        disconnect_every_s=1.0, drop_prob=0.03, duplicate_prob=0.02, malformed_prob=0.01, seed=4
    )
    venue = KrakenFront(
        market(tps=150).market("kraken"), faults, rest_requests_per_s=200, rest_burst=50
    )
    async with venue:
        settings = fast(venue.ws_url, venue.rest_url)
        connector = VenueConnector(KrakenSpec(settings), [BTC, "ETH-USD"], sink)
        async with running(connector):
            await asyncio.sleep(3.0)
            await wait_until(lambda: connector.status().backfill_pending == 0, within=10)
            await asyncio.sleep(0.3)
            await wait_until(lambda: connector.status().backfill_pending == 0, within=10)
            status = connector.status()
            truth = {(t.symbol, t.trade_id): t for t in venue.ground_truth()}
    trades = [r for r in sink.records if isinstance(r, Trade)]
    keys = [(t.symbol, t.trade_id) for t in trades]
    assert len(keys) == len(set(keys))  # nothing twice
    for trade in trades:
        real = truth[(trade.symbol, trade.trade_id)]
        assert (trade.price, trade.qty, trade.side, trade.ts_event) == (
            real.price,
            real.qty,
            real.side,
            real.ts_event,
        )
    for symbol in (BTC, "ETH-USD"):  # id for id, from our first to our last
        got = sorted(i for s, i in keys if s == symbol)
        assert got == list(range(got[0], got[-1] + 1))
    assert status.reconnects >= 1 and sum(s.gaps_found for s in status.symbols.values()) >= 1
    assert len(sink.dead_letters) == status.dead_letters
