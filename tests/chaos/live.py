"""A live pipeline as a child process against the simulated exchange in another one."""

import json
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.chaos.conftest import cli
from tests.chaos.truth import TruthTrade

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


def start_exchange(faults: str = FAULTS) -> Iterator[Exchange]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.chaos.exchange_process", SYMBOLS, "300", "4", faults],
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
