"""Every fault the simulated exchange can inject, alone and all together, against a live run.

Each run trades 3 symbols at 300 trades/s with the fault on for a while, then turns the
per-frame and REST faults off and lets the pipeline settle (every connection open, no
back-fill pending) before stopping. Whatever the wire did, the data dir must hold exactly the
exchange's trades between our first and last id per symbol, once each, candles equal to SQL
over them, one whale alert per whale trade, and every symbol complete.
"""

import asyncio
import time

import pytest

from marketpipe.config import Settings
from marketpipe.embedded.demo import point_at
from marketpipe.embedded.live import LiveRun
from marketpipe.simulator import FaultPlan, SimulatedExchange, SyntheticMarket
from tests.chaos.snapshot import Snapshot, assert_consistent, snapshot
from tests.chaos.truth import assert_matches_truth

pytestmark = pytest.mark.integration

SYMBOLS = ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
FAULTY_S = 6.0
GAPS = 0.01  # REST faults need REST traffic: dropped frames make gaps to back-fill

# name -> (plan, the injector counter that proves the fault fired, or None)
MODES: dict[str, tuple[FaultPlan, str | None]] = {
    "disconnects": (FaultPlan(disconnect_every_s=1.5), "disconnect"),
    "stall_without_pong": (FaultPlan(stall_every_s=2.0, stall_s=2.0), "stall"),
    "duplicates": (FaultPlan(duplicate_prob=0.05), "duplicate"),
    "reordering": (FaultPlan(reorder_prob=0.05), "reorder"),
    "malformed_and_truncated": (FaultPlan(malformed_prob=0.03), "malformed"),
    "dropped_frames": (FaultPlan(drop_prob=0.02), "drop"),
    "server_shutdown": (
        FaultPlan(server_shutdown_every_s=2.0, server_shutdown_grace_s=0.5),
        "server_shutdown",
    ),
    "rest_429_retry_after": (
        FaultPlan(drop_prob=GAPS, rest_429_prob=0.3, retry_after_s=1),
        "rest_429",
    ),
    "rest_418_retry_after": (
        FaultPlan(drop_prob=GAPS, rest_418_prob=0.1, retry_after_s=1),
        "rest_418",
    ),
    "slow_rest": (FaultPlan(drop_prob=GAPS, rest_delay_s=0.3), None),
    "all_together": (
        FaultPlan(
            disconnect_every_s=2.5,
            stall_every_s=3.5,
            stall_s=1.5,
            drop_prob=0.01,
            duplicate_prob=0.02,
            reorder_prob=0.02,
            malformed_prob=0.01,
            server_shutdown_every_s=4.0,
            server_shutdown_grace_s=0.5,
            rest_429_prob=0.1,
            rest_418_prob=0.03,
            retry_after_s=1,
            rest_delay_s=0.05,
            seed=9,
        ),
        None,
    ),
}


def fault_settings(settings: Settings) -> Settings:
    binance = settings.binance.model_copy(
        update={"backoff_initial_s": 0.05, "backoff_max_s": 0.5, "silence_timeout_s": 1.0}
    )
    api = settings.api.model_copy(update={"port": 0})
    return settings.model_copy(update={"symbols": SYMBOLS, "binance": binance, "api": api})


async def settle(live: LiveRun, timeout_s: float = 60.0) -> None:
    """Until every connection is open with no back-fill pending, twice 0.5 s apart."""
    deadline = time.monotonic() + timeout_s
    calm = 0
    while calm < 2:
        assert time.monotonic() < deadline, "the pipeline never settled after the faults"
        await asyncio.sleep(0.5)
        status = live.connector.status() if live.connector else None
        ok = (
            status is not None
            and status.connections_open == len(status.connections) > 0
            and status.backfill_pending == 0
        )
        calm = calm + 1 if ok else 0
    await asyncio.sleep(0.5)  # one more micro-batch commits what the last page delivered


async def live_with_faults(settings: Settings, plan: FaultPlan) -> tuple[Snapshot, LiveRun, dict]:
    async with SimulatedExchange(SyntheticMarket(SYMBOLS, 300, seed=21), plan) as exchange:
        live = LiveRun(point_at(settings, exchange))
        run = asyncio.create_task(live.run(None))
        await asyncio.sleep(FAULTY_S)
        exchange.injector.plan = FaultPlan()  # frame and REST faults off; timers keep going
        await settle(live)
        live.stop()
        await asyncio.wait_for(run, 60)
        truth = [
            (t.symbol, t.trade_id, t.price, t.qty, t.side, t.ts_event)
            for t in exchange.ground_truth()
        ]
        fired = exchange.fault_counts
    snap = snapshot(settings.data_dir)
    assert_consistent(snap)
    assert_matches_truth(snap, settings.data_dir, truth)
    return snap, live, fired


def check_mode(name: str, settings: Settings) -> None:
    plan, counter = MODES[name]
    snap, live, fired = asyncio.run(live_with_faults(fault_settings(settings), plan))
    if counter is not None:
        assert fired.get(counter, 0) > 0, f"{counter} never fired: {fired}"
    assert live.connector is not None
    status = live.connector.status()
    if name in ("malformed_and_truncated", "all_together"):
        assert snap.dead_letters > 0 and status.dead_letters == snap.dead_letters
    if name in ("disconnects", "stall_without_pong", "server_shutdown", "all_together"):
        assert status.reconnects > 0
    if plan.drop_prob:
        assert sum(s.gaps_filled for s in status.symbols.values()) > 0


def test_all_faults_together_leave_a_complete_and_true_data_dir(settings: Settings) -> None:
    check_mode("all_together", settings)


@pytest.mark.chaos
@pytest.mark.parametrize("name", [m for m in MODES if m != "all_together"])
def test_each_fault_alone_leaves_a_complete_and_true_data_dir(
    name: str, settings: Settings
) -> None:
    check_mode(name, settings)
