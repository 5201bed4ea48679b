"""The generic VenueConnector running FinnhubSpec against the simulated Finnhub front, end to
end: every trade the front executed is stored exactly once (deduplicated by key, as the
engine's KeySet does), under duplicated, reordered and malformed frames; the keys equal an
independent count; a wrong token never yields data nor leaks into our logs."""

import asyncio
import logging
import time
from collections import Counter

import pytest

from marketpipe.model.records import Trade
from marketpipe.simulator.faults import FaultPlan
from marketpipe.simulator.finnhub import FinnhubFront, stock_market
from marketpipe.sources.connector import VenueConnector
from marketpipe.sources.finnhub.settings import FinnhubSettings
from marketpipe.sources.finnhub.spec import FinnhubSpec
from tests.sources.fake_binance import Sink, wait_until

pytestmark = pytest.mark.integration

TOKEN = "sim-token-8f3a"
SYMBOLS = ["AAPL-USD", "MSFT-USD"]


def spec_for(front: FinnhubFront, token: str = TOKEN) -> FinnhubSpec:
    return FinnhubSpec(
        FinnhubSettings(
            ws_url=front.ws_url,
            token=token,
            symbols=SYMBOLS,
            backoff_initial_s=0.05,
            backoff_max_s=0.2,
            silence_timeout_s=1.0,
        )
    )


def stored(sink: Sink) -> dict[tuple[str, int], Trade]:
    """What the engine keeps: one trade per (symbol, key). A repeated key must be the same
    trade seen again, never a different trade."""
    out: dict[tuple[str, int], Trade] = {}
    for t in (r for r in sink.records if isinstance(r, Trade)):
        first = out.setdefault((t.symbol, t.trade_id), t)
        assert (first.price, first.qty, first.ts_event, first.side) == (
            t.price,
            t.qty,
            t.ts_event,
            t.side,
        ), f"two different trades share the key {t.trade_id}"
    return out


def expected_keys(truth: list[Trade]) -> dict[tuple[str, int], tuple[float, float, int]]:
    """Independent keys: ms * 1000 + the trade's rank among its symbol's trades of that ms,
    in the order the venue executed (and sent) them."""
    rank: Counter[tuple[str, int]] = Counter()
    out = {}
    for t in truth:  # ground truth is in (time, symbol, execution) order
        ms = t.ts_event // 1000
        out[(t.symbol, ms * 1000 + rank[(t.symbol, ms)])] = (t.price, t.qty, t.ts_event)
        rank[(t.symbol, ms)] += 1
    return out


async def run_against(
    faults: FaultPlan, seconds: float, seed: int, batch_max: int = 50
) -> tuple[Sink, list[Trade], VenueConnector, dict[str, int]]:
    start = time.time_ns() // 1000 + 500_000  # trades begin once we are subscribed
    market = stock_market(["AAPL", "MSFT"], 600, seed=seed, start_us=start)
    sink = Sink()
    async with FinnhubFront(
        market, faults, token=TOKEN, ping_every_s=0.2, batch_max=batch_max
    ) as front:
        connector = VenueConnector(spec_for(front), SYMBOLS, sink)
        task = asyncio.create_task(connector.run())
        try:
            await asyncio.sleep(seconds)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        truth = front.ground_truth()
        counts = front.fault_counts
    return sink, truth, connector, counts


def window(sink: Sink) -> int:
    """A time (µs) before which every sent trade has surely arrived: 200 ms before the
    newest trade of the slower symbol."""
    newest = [max(t.ts_event for t in sink.trades(s)) for s in SYMBOLS]
    return min(newest) - 200_000


def test_window_needs_both_symbols() -> None:
    with pytest.raises(ValueError):
        window(Sink())


async def test_every_trade_is_stored_exactly_once_under_duplicates_and_malformed_frames() -> None:
    faults = FaultPlan(duplicate_prob=0.1, malformed_prob=0.05, seed=11)
    # Batches of 3: one millisecond's trades often straddle frames, so ordinals must carry on.
    sink, truth, connector, counts = await run_against(faults, 2.5, seed=21, batch_max=3)
    assert counts["duplicate"] > 5 and counts["malformed"] > 2
    cut = window(sink)
    got = {k: t for k, t in stored(sink).items() if t.ts_event < cut}
    want = {k: v for k, v in expected_keys(truth).items() if v[2] < cut}
    assert len(want) > 500
    assert {k: (t.price, t.qty, t.ts_event) for k, t in got.items()} == want
    forwarded = [r for r in sink.records if isinstance(r, Trade)]
    assert len(forwarded) > len(stored(sink))  # the duplicates did reach us, and merged
    # Every malformed frame was dead-lettered and counted, none crashed the connector.
    status = connector.status()
    assert status.dead_letters == len(sink.dead_letters) > 0
    assert all(d.source == "finnhub" for d in sink.dead_letters)
    assert status.has_trade_ids is False and status.connections_open in (0, 1)


async def test_reordered_frames_lose_and_double_nothing() -> None:
    faults = FaultPlan(reorder_prob=0.1, duplicate_prob=0.05, seed=12)
    sink, truth, _, counts = await run_against(faults, 2.0, seed=22)
    assert counts["reorder"] > 3
    cut = window(sink)
    got = Counter(
        (t.symbol, t.price, t.qty, t.ts_event) for t in stored(sink).values() if t.ts_event < cut
    )
    want = Counter((t.symbol, t.price, t.qty, t.ts_event) for t in truth if t.ts_event < cut)
    assert got == want and sum(want.values()) > 300


async def test_disconnects_reconnect_and_never_store_a_trade_twice() -> None:
    faults = FaultPlan(disconnect_every_s=0.5, duplicate_prob=0.05, seed=13)
    sink, truth, connector, counts = await run_against(faults, 2.5, seed=23)
    assert counts["disconnect"] >= 3
    assert connector.status().connections[0].connections_opened >= 3
    kept = Counter((t.symbol, t.price, t.qty, t.ts_event) for t in stored(sink).values())
    real = Counter((t.symbol, t.price, t.qty, t.ts_event) for t in truth)
    # No back-fill without ids: what was sent while we reconnected is lost, but nothing that
    # arrived is stored twice, and nothing stored is made up.
    assert kept and not kept - real


async def test_a_wrong_token_gets_no_data_and_stays_out_of_our_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "wrong-token-d41d8cd9"
    sink = Sink()
    with caplog.at_level(logging.DEBUG, logger="marketpipe"):
        async with FinnhubFront(stock_market(["AAPL"], 100, seed=1), token=TOKEN) as front:
            connector = VenueConnector(spec_for(front, secret), SYMBOLS, sink)
            task = asyncio.create_task(connector.run())
            try:
                await wait_until(lambda: front.rejected >= 2, within=5)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    assert [r for r in sink.records if isinstance(r, Trade)] == []
    ours = [r for r in caplog.records if r.name.startswith("marketpipe")]
    assert any("Invalid API key" in r.getMessage() for r in ours)
    assert all(secret not in r.getMessage() for r in ours)


async def test_a_frame_of_1001_trades_in_one_millisecond_is_dead_lettered_and_counted() -> None:
    sink = Sink()
    spec = FinnhubSpec(FinnhubSettings(token=TOKEN, symbols=["AAPL"]))
    connector = VenueConnector(spec, ["AAPL-USD"], sink)
    item = '{"s":"AAPL","p":189.5,"t":1700000000123,"v":10}'
    too_many = f'{{"type":"trade","data":[{",".join([item] * 1001)}]}}'.encode()
    exactly = f'{{"type":"trade","data":[{",".join([item] * 1000)}]}}'.encode()
    await connector.on_frames(
        "finnhub-ws-0", [(too_many, 7), (b'{"type":"trade"', 8), (exactly, 9)]
    )
    (first, second) = sink.dead_letters
    assert (first.raw, first.source, first.ts) == (too_many, "finnhub", 7)
    assert "more than 1000" in first.error and second.ts == 8
    assert connector.status().dead_letters == 2
    keys = [t.trade_id for t in sink.trades("AAPL-USD")]
    assert keys == [1_700_000_000_123_000 + i for i in range(1000)]  # the bad frame took none
