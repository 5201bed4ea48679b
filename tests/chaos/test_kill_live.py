"""kill -9 a live run against the simulated exchange (with faults) and restart it, repeatedly.

The exchange runs in a process of its own and keeps trading while the pipeline is down; each
restart resumes from the stored positions and back-fills the downtime over REST. In the end
every trade the exchange made between our first and last stored id is stored exactly once,
candles equal SQL over those trades, and each whale trade alerted once.
"""

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.chaos.conftest import cli, finish, kill9_after
from tests.chaos.snapshot import assert_consistent, snapshot
from tests.chaos.truth import TruthTrade, assert_matches_truth

pytestmark = pytest.mark.integration

SYMBOLS = "BTCUSDT,ETHUSDT,SOLUSDT"
FAULTS = "disconnect=4,dup=0.02,reorder=0.02,malformed=0.01,drop=0.01,429=0.05,seed=3"
REPO = Path(__file__).resolve().parents[2]


class Exchange:
    def __init__(self, proc: subprocess.Popen[str], ws_url: str, rest_url: str) -> None:
        self.proc, self.ws_url, self.rest_url = proc, ws_url, rest_url

    def command(self, line: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def truth(self, path: Path) -> list[TruthTrade]:
        self.command(f"truth {path}")
        trades: list[TruthTrade] = pickle.loads(path.read_bytes())
        return trades


@pytest.fixture
def exchange() -> Iterator[Exchange]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.chaos.exchange_process", SYMBOLS, "300", "4", FAULTS],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    ws_url, rest_url = proc.stdout.readline().split()
    yield Exchange(proc, ws_url, rest_url)
    proc.stdin.close()
    proc.wait(timeout=30)


def live_env(exchange: Exchange) -> dict[str, str]:
    return {
        "MARKETPIPE_BINANCE__WS_URL": exchange.ws_url,
        "MARKETPIPE_BINANCE__REST_URL": exchange.rest_url,
        "MARKETPIPE_BINANCE__BACKOFF_INITIAL_S": "0.05",
        "MARKETPIPE_BINANCE__BACKOFF_MAX_S": "0.5",
        "MARKETPIPE_BINANCE__SILENCE_TIMEOUT_S": "2",
    }


def run_live(exchange: Exchange, data: Path, cwd: Path) -> subprocess.Popen[bytes]:
    args = ("run", "--data-dir", str(data), "--symbols", SYMBOLS, "--port", "0")
    return cli(*args, cwd=cwd, env=live_env(exchange))


def wait_settled(data: Path, timeout_s: float = 60.0) -> None:
    """Until the running pipeline's health shows no pending back-fill twice, 1 s apart."""
    deadline = time.monotonic() + timeout_s
    calm = 0
    while calm < 2:
        assert time.monotonic() < deadline, "the last run never finished its back-fills"
        time.sleep(1.0)
        lock = data / "marketpipe.lock.json"
        if not lock.is_file():
            continue
        port = json.loads(lock.read_text())["port"]
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/api/v1/system/health", timeout=5).json()
        except httpx.HTTPError:
            continue
        binance = health["components"].get("binance", {})
        settled = binance.get("connections_open") and binance.get("backfill_pending") == 0
        calm = calm + 1 if settled else 0
    time.sleep(1.0)  # the last back-filled page goes through one more commit


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
