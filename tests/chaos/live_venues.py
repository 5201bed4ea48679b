"""A multi-venue live pipeline as a child process against simulated venues in another one.

`start_venues` runs `tests.chaos.venues_process` (Binance, Coinbase and Kraken fronts over one
market); `run_live_venues` starts `marketpipe run --venues ...` pointed at them through
`MARKETPIPE_<VENUE>__WS_URL` / `__REST_URL`; `wait_venues_settled` waits, over the run's own
health endpoint, until every venue is connected with no back-fill pending.
"""

import json
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx

from tests.chaos.conftest import cli

REPO = Path(__file__).resolve().parents[2]
LISTINGS: dict[str, list[str]] = {
    "binance": ["BTC-USDT", "ETH-USDT"],
    "coinbase": ["BTC-USD", "ETH-USD"],
    "kraken": ["BTC-USD", "ETH-USD"],
}
# Each venue's REST trade history: the back-filler's one source of what a live feed missed.
HISTORY_ROUTES = {
    "binance": "/api/v3/historicalTrades",
    "coinbase": "/products/{product_id}/trades",
    "kraken": "/0/public/Trades",
}
# exchange, symbol, trade_id, price, qty, side, ts_event (µs)
VenueTrade = tuple[str, str, int, float, float, str, int]


class Venues:
    """The venues' process: its URLs, and the commands it takes on stdin."""

    def __init__(self, proc: subprocess.Popen[str], urls: Mapping[str, Sequence[str]]) -> None:
        self.proc = proc
        self.urls = {venue: (ws, rest) for venue, (ws, rest) in urls.items()}

    def _ask(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def command(self, line: str) -> None:
        assert self._ask(line) == "ok", line

    def truth(self, path: Path) -> list[VenueTrade]:
        """Every trade the venues have made so far."""
        self.command(f"truth {path}")
        trades: list[VenueTrade] = pickle.loads(path.read_bytes())
        return trades

    def requests(self) -> dict[str, dict[str, int]]:
        """Requests each venue's front has served so far, by route."""
        counts: dict[str, dict[str, int]] = json.loads(self._ask("requests"))
        return counts


def start_venues(
    faults: str,
    trades_per_s: float = 20.0,
    seed: int = 4,
    listings: Mapping[str, list[str]] = LISTINGS,
) -> Iterator[Venues]:
    """The venues' process for the length of a test (a generator for a fixture)."""
    spec = ";".join(f"{venue}={','.join(symbols)}" for venue, symbols in listings.items())
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.chaos.venues_process", spec, str(trades_per_s), str(seed),
         faults],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    yield Venues(proc, json.loads(proc.stdout.readline()))
    proc.stdin.close()
    proc.wait(timeout=30)


def venues_env(venues: Venues, listings: Mapping[str, list[str]] = LISTINGS) -> dict[str, str]:
    """Every venue's endpoints, symbols and quick reconnect timing, as environment overrides."""
    env: dict[str, str] = {}
    for venue, (ws_url, rest_url) in venues.urls.items():
        prefix = f"MARKETPIPE_{venue.upper()}__"
        env |= {
            prefix + "WS_URL": ws_url,
            prefix + "REST_URL": rest_url,
            prefix + "SYMBOLS": ",".join(listings[venue]),
            prefix + "BACKOFF_INITIAL_S": "0.05",
            prefix + "BACKOFF_MAX_S": "0.5",
            prefix + "SILENCE_TIMEOUT_S": "2",
        }
    return env


def run_live_venues(
    venues: Venues, data: Path, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`marketpipe run --venues <all of them>` on `data`, its API on a free port; `env`
    adds settings (`MARKETPIPE_KRAKEN__BACKFILL_PAGE_SIZE`, ...)."""
    names = ",".join(venues.urls)
    args = ("run", "--venues", names, "--data-dir", str(data), "--port", "0")
    quiet = {"MARKETPIPE_SCHEDULER__ENABLED": "false"}  # no dbt runs to compete for the CPU
    return cli(*args, cwd=cwd, env=venues_env(venues) | quiet | dict(env or {}))


def health(data: Path) -> dict[str, object] | None:
    """The running pipeline's `/api/v1/system/health`, or None while it is not serving."""
    lock = data / "marketpipe.lock.json"
    if not lock.is_file():
        return None
    try:
        port = json.loads(lock.read_text())["port"]
        answer: dict[str, object] = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/system/health", timeout=5
        ).json()
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    return answer


def _all_up(status: dict[str, object] | None, venues: Sequence[str], *, idle: bool) -> bool:
    if status is None:
        return False
    components = status["components"]
    assert isinstance(components, dict)
    for venue in venues:
        component = components.get(venue, {})
        if not component.get("connections_open"):
            return False
        if idle and component.get("backfill_pending") != 0:
            return False
    engine = components.get("engine", {})
    return bool(engine.get("trades"))


def wait_venues_streaming(
    data: Path, venues: Sequence[str], proc: subprocess.Popen[bytes], timeout_s: float = 60.0
) -> None:
    """Until every venue is connected and the engine has stored trades."""
    deadline = time.monotonic() + timeout_s
    while not _all_up(health(data), venues, idle=False):
        assert proc.poll() is None, proc.communicate()[1].decode(errors="replace")
        assert time.monotonic() < deadline, "the run never connected to every venue"
        time.sleep(0.2)


def wait_venues_settled(data: Path, venues: Sequence[str], timeout_s: float = 60.0) -> None:
    """Until every venue shows no pending back-fill twice, 0.5 s apart."""
    deadline = time.monotonic() + timeout_s
    calm = 0
    status: dict[str, object] | None = None
    while calm < 2:
        assert time.monotonic() < deadline, f"the last run never finished its back-fills: {status}"
        time.sleep(0.5)
        status = health(data)
        calm = calm + 1 if _all_up(status, venues, idle=True) else 0
    time.sleep(1.0)  # the last back-filled page goes through one more commit
