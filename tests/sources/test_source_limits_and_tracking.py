"""Unit tests: message pacing, weight budget, backoff, shard planning, trade-id tracking."""

import asyncio
import itertools
import json
import time

import pytest

from marketpipe.model.records import Trade
from marketpipe.model.symbols import SymbolMap
from marketpipe.sources.binance.streams import plan_shards
from marketpipe.sources.ratelimit import MessagePacer, WeightBudget, backoff_delay
from marketpipe.sources.tracker import TradeIdTracker


def trade(tid: int, symbol: str = "BTC-USDT") -> Trade:
    return Trade("binance", symbol, tid, 1.0, 1.0, "buy", 1, 1)


async def test_pacer_keeps_messages_at_most_rate_per_second() -> None:
    pacer = MessagePacer(20.0)
    stamps = []
    for _ in range(6):
        await pacer.wait()
        stamps.append(time.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.045  # 1/20 s, less timer slack


async def test_weight_budget_waits_for_the_next_minute_when_spent() -> None:
    now = [120.0]
    budget = WeightBudget(50, clock=lambda: now[0], poll_s=0.01)
    await budget.acquire(25)
    await budget.acquire(25)
    assert budget.used == 50
    blocked = asyncio.create_task(budget.acquire(25))
    await asyncio.sleep(0.02)
    assert not blocked.done()
    now[0] = 180.0  # a new minute
    await asyncio.wait_for(blocked, 1.0)
    assert budget.used == 25


def test_weight_budget_adopts_a_higher_server_count() -> None:
    budget = WeightBudget(6000, clock=lambda: 60.0)
    budget.observe("5900")
    budget.observe("12")  # lower than ours: ignored
    budget.observe("garbage")
    assert budget.used == 5900


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    assert backoff_delay(0, 0.5, 30, rng=lambda: 1.0) == pytest.approx(1.0 * 0.5)
    assert backoff_delay(3, 0.5, 30, rng=lambda: 0.0) == pytest.approx(4.0 * 0.5)
    assert backoff_delay(3, 0.5, 30, rng=lambda: 0.999) < 4.0
    assert backoff_delay(60, 0.5, 30, rng=lambda: 0.999) < 30.0
    assert backoff_delay(60, 0.5, 30, rng=lambda: 0.0) == 15.0


def test_shards_hold_at_most_max_streams_and_keep_short_urls() -> None:
    shards = plan_shards("wss://x:9443/", ["BTC-USDT", "ETH-USDT", "SOL-USDT"], SymbolMap(), 2)
    assert [s.url for s in shards] == [
        f"wss://x:9443/stream?streams={n}@trade/{n}@bookTicker"
        for n in ("btcusdt", "ethusdt", "solusdt")
    ]
    assert [s.symbols for s in shards] == [("BTC-USDT",), ("ETH-USDT",), ("SOL-USDT",)]
    assert all(s.subscribe_messages == () for s in shards)
    one = plan_shards("wss://x", ["BTC-USDT", "ETH-USDT"], SymbolMap(), 1024)
    assert len(one) == 1 and len(one[0].streams) == 4


def test_shards_with_long_stream_lists_subscribe_in_chunks() -> None:
    symbols = [f"C{i:04d}-USDT" for i in range(600)]  # 1200 streams
    shards = plan_shards("wss://x", symbols, SymbolMap(), 1024)
    assert [len(s.streams) for s in shards] == [1024, 176]
    assert shards[0].url == "wss://x/stream"
    sent = [json.loads(m) for m in shards[0].subscribe_messages]
    assert [len(m["params"]) for m in sent] == [100] * 10 + [24]
    assert [m["id"] for m in sent] == list(range(1, 12))
    assert all(m["method"] == "SUBSCRIBE" for m in sent)


def test_tracker_forwards_consecutive_ids_and_reports_a_gap_once() -> None:
    tracker = TradeIdTracker()
    assert tracker.on_live(trade(10)) == (True, None)
    assert tracker.on_live(trade(11)) == (True, None)
    forward, job = tracker.on_live(trade(15))
    assert forward and job is not None and (job.from_id, job.to_id) == (12, 14)
    assert tracker.on_live(trade(16)) == (True, None)
    assert tracker.track("BTC-USDT").gaps_found == 1


def test_tracker_never_counts_an_older_or_repeated_id_as_a_gap() -> None:
    tracker = TradeIdTracker()
    tracker.on_live(trade(10))
    tracker.on_live(trade(11))
    assert tracker.on_live(trade(11)) == (False, None)
    assert tracker.on_live(trade(9)) == (False, None)
    track = tracker.track("BTC-USDT")
    assert (track.gaps_found, track.duplicates, track.last_id) == (0, 2, 11)


def test_catch_up_after_reconnect_is_bounded_by_the_first_live_id() -> None:
    tracker = TradeIdTracker.from_positions({"BTC-USDT": 100})
    [job] = tracker.on_connected(["BTC-USDT"])
    assert (job.from_id, job.to_id, job.reason) == (101, None, "catchup")
    assert tracker.on_connected(["BTC-USDT"]) == []  # still waiting: no second catch-up
    assert tracker.on_live(trade(120)) == (True, None)  # not a separate gap: catch-up covers it
    assert job.to_id == 119
    kept = tracker.accept_backfill(job, [trade(i) for i in range(101, 125)])
    assert [t.trade_id for t in kept] == list(range(101, 120))
    assert tracker.finish(job, len(kept), complete=True) == (True, True)
    track = tracker.track("BTC-USDT")
    assert (track.last_id, track.gaps_found, track.gaps_filled) == (120, 1, 1)


def test_catch_up_that_ran_ahead_of_the_live_stream_suppresses_duplicates() -> None:
    tracker = TradeIdTracker.from_positions({"BTC-USDT": 100})
    [job] = tracker.on_connected(["BTC-USDT"])
    tracker.accept_backfill(job, [trade(i) for i in range(101, 131)])
    assert tracker.on_live(trade(125)) == (False, None)
    assert tracker.on_live(trade(131)) == (True, None)
    assert tracker.track("BTC-USDT").duplicates == 1


def test_catch_up_with_nothing_missed_is_not_a_gap() -> None:
    tracker = TradeIdTracker.from_positions({"BTC-USDT": 100})
    [job] = tracker.on_connected(["BTC-USDT"])
    assert tracker.finish(job, 0, complete=True) == (False, False)
    assert tracker.track("BTC-USDT").gaps_found == 0
    assert tracker.on_connected([]) == [] and TradeIdTracker().on_connected(["X-Y"]) == []
