"""kill -9 a multi-venue live run (Binance, Coinbase, Kraken) and restart it on the same data dir.

The simulated venues run in a process of their own and keep trading while the pipeline is
down. Each restart resumes every venue from its stored positions and back-fills the downtime
over that venue's REST history (Binance `historicalTrades`, Coinbase `/products/{id}/trades`,
Kraken `/0/public/Trades`). In the end every stream (exchange, symbol) holds exactly the trades
its venue made between our first and last stored id, once each, at 100 % completeness, the
trades made while no pipeline ran among them; and the 1m candles equal a reference computed
from that ground truth alone: what an uninterrupted run over the same span stores.
"""

import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.conftest import finish
from tests.chaos.live_venues import (
    HISTORY_ROUTES,
    LISTINGS,
    Venues,
    run_live_venues,
    start_venues,
    wait_venues_settled,
    wait_venues_streaming,
)
from tests.chaos.venue_truth import (
    Stream,
    assert_candles_are_the_references,
    assert_complete,
    assert_every_stream_exact,
    assert_whales_alerted_once,
    last_ids,
    stored_ids,
    truth_in_span,
)

pytestmark = pytest.mark.integration

STREAMS: set[Stream] = {
    (venue, symbol) for venue, symbols in LISTINGS.items() for symbol in symbols
}
# Light faults for the short run (each drop is a live gap, filled over REST too); none that
# stall a venue, so the run stays short.
LIGHT = "dup=0.01,reorder=0.01,drop=0.005,seed=3"
CHAOS = "disconnect=4,dup=0.02,reorder=0.02,malformed=0.01,drop=0.01,429=0.05,seed=3"
# Small pages: a downtime takes several, and Kraken's newest page (100 trades, about 8 s of
# BTC-USD) often no longer reaches back to the stored position, so its REST history searches
# back in time for it (`KrakenTradeHistory.locate`), a restart remembering no trade times.
# Kraken's pages stay larger: its REST allows one request a second, and must keep up.
SMALL_PAGES = {
    "MARKETPIPE_BINANCE__BACKFILL_PAGE_SIZE": "20",
    "MARKETPIPE_COINBASE__BACKFILL_PAGE_SIZE": "20",
    "MARKETPIPE_KRAKEN__BACKFILL_PAGE_SIZE": "100",
    "MARKETPIPE_KRAKEN__LOCATE_STEP_S": "5",
}


@pytest.fixture
def light_venues() -> Iterator[Venues]:
    yield from start_venues(LIGHT)


@pytest.fixture
def chaos_venues() -> Iterator[Venues]:
    yield from start_venues(CHAOS)


def kill_and_resume(
    venues: Venues,
    tmp_path: Path,
    kills: int,
    seed: int,
    *,
    down_s: tuple[float, float],
    env: dict[str, str] | None = None,
    settle_s: float = 60.0,
) -> None:
    data = tmp_path / "live"
    names = list(venues.urls)
    rng = random.Random(seed)
    downtime: dict[Stream, set[int]] = {s: set() for s in STREAMS}
    for kill in range(kills):
        run = run_live_venues(venues, data, tmp_path, env)
        wait_venues_streaming(data, names, run)
        time.sleep(rng.uniform(0.5, 2.0))  # mid-stream: commits and back-fills under way
        os.kill(run.pid, signal.SIGKILL)
        run.communicate()
        at_kill = last_ids(venues.truth(tmp_path / "truth.pickle"))
        time.sleep(rng.uniform(*down_s))  # the venues trade on while we are down
        at_restart = last_ids(venues.truth(tmp_path / "truth.pickle"))
        for stream in STREAMS:  # made while no pipeline was connected: REST's to deliver
            downtime[stream] |= set(range(at_kill[stream] + 1, at_restart[stream] + 1))
        assert all(at_restart[s] > at_kill[s] for s in STREAMS), (kill, at_kill, at_restart)
    before = venues.requests()
    last = run_live_venues(venues, data, tmp_path, env)
    wait_venues_streaming(data, names, last)
    time.sleep(1.0)  # the last run, too, rides the faults for a while
    venues.command("calm")
    wait_venues_settled(data, names, settle_s)
    os.kill(last.pid, signal.SIGINT)
    code, err = finish(last, timeout=60)
    assert code in (0, 130, -signal.SIGINT), err
    after = venues.requests()
    truth = venues.truth(tmp_path / "truth.pickle")

    ids = stored_ids(data)
    assert_every_stream_exact(ids, truth, STREAMS)
    for stream, missed in downtime.items():
        stored = set(ids[stream])
        assert missed and missed <= stored, f"{stream}: {len(missed - stored)} downtime trades lost"
    # The downtime came over REST: every venue's trade history answered the last start.
    asked = {v: after[v].get(r, 0) - before[v].get(r, 0) for v, r in HISTORY_ROUTES.items()}
    assert all(n > 0 for n in asked.values()), asked
    assert_complete(data, STREAMS)
    span = truth_in_span(truth, ids)
    assert_candles_are_the_references(data, span)
    assert_whales_alerted_once(data, span)


def test_three_venue_run_killed_once_backfills_the_downtime_and_equals_the_truth(
    light_venues: Venues, tmp_path: Path
) -> None:
    kill_and_resume(light_venues, tmp_path, kills=1, seed=1, down_s=(2.0, 3.0))


@pytest.mark.chaos
def test_three_venue_run_killed_5_times_under_chaos_equals_the_truth(
    chaos_venues: Venues, tmp_path: Path
) -> None:
    kill_and_resume(
        chaos_venues, tmp_path, kills=5, seed=2, down_s=(0.5, 6.0), env=SMALL_PAGES, settle_s=120.0
    )
