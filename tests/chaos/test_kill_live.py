"""kill -9 a live run against the simulated exchange (with faults) and restart it, repeatedly.

The exchange runs in a process of its own and keeps trading while the pipeline is down; each
restart resumes from the stored positions and back-fills the downtime over REST. In the end
every trade the exchange made between our first and last stored id is stored exactly once,
candles equal SQL over those trades, and each whale trade alerted once.
"""

import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.conftest import finish, kill9_after
from tests.chaos.live import Exchange, run_live, start_exchange, wait_settled
from tests.chaos.snapshot import assert_consistent, snapshot
from tests.chaos.truth import assert_matches_truth


@pytest.fixture
def exchange() -> Iterator[Exchange]:
    yield from start_exchange()


pytestmark = pytest.mark.integration


def kill_and_resume_live(exchange: Exchange, tmp_path: Path, kills: int, seed: int) -> None:
    data = tmp_path / "live"
    rng = random.Random(seed)
    landed = 0
    while landed < kills:
        landed += kill9_after(run_live(exchange, data, tmp_path), rng.uniform(2.0, 6.0))
        time.sleep(rng.uniform(0.0, 1.0))  # the exchange trades on while we are down
    last = run_live(exchange, data, tmp_path)
    time.sleep(6.0)  # the last run, too, rides the faults for a while
    # Let the last run settle: no new drops, every pending back-fill done and committed.
    exchange.command("calm")
    wait_settled(data)
    os.kill(last.pid, signal.SIGINT)
    code, err = finish(last, timeout=60)
    assert code in (0, 130, -signal.SIGINT), err
    truth = exchange.truth(tmp_path / "truth.pickle")

    snap = snapshot(data)
    assert_consistent(snap)
    assert_matches_truth(snap, data, truth)
    assert snap.dead_letters > 0, "malformed frames were dead-lettered"


def test_live_run_killed_3_times_stores_every_trade_once_and_true_candles(
    exchange: Exchange, tmp_path: Path
) -> None:
    kill_and_resume_live(exchange, tmp_path, kills=3, seed=1)


@pytest.mark.chaos
def test_live_run_killed_20_times_stores_every_trade_once_and_true_candles(
    exchange: Exchange, tmp_path: Path
) -> None:
    kill_and_resume_live(exchange, tmp_path, kills=20, seed=2)
