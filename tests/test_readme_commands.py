"""The README's commands exactly as a new user types them: from the repo root, with the
default relative data dir (`make demo` stores in `data/demo`).

- `make demo DEMO_ARGS="--duration N"`: the scheduled dbt build succeeds, health stays 200
  once the venue is connected, and nothing appears in the checkout outside `data/`;
- `marketpipe dbt build --data-dir data/demo` (relative) builds and publishes the marts;
- a second `make demo` on the same data dir stores new trades from its first seconds.

A `data/demo` the user already has is moved aside first and put back afterwards.
`make run` offline: one plain line says the venue cannot be reached and what to check.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from marketpipe.model.venues import has_sequential_ids
from marketpipe.storage.embedded import EmbeddedStore

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO / "data" / "demo"
FIRST_DEMO_S = 600  # a cap: the first demo is stopped once its dbt build has passed
# (it starts after 2 s and takes 15-30 s on 2 quiet cores, minutes on loaded ones)
SECOND_DEMO_S = 12
HEALTH_URL = re.compile(r"http://127\.0\.0\.1:(\d+)/api/v1/system/health")
TOTALS_LINE = re.compile(r"^trades=(\d+) candles=\d+ alerts=\d+ duplicates=(\d+)$", re.M)


def user_environment(**extra: str) -> dict[str, str]:
    """The test's environment without its own MARKETPIPE_ settings; no bytecode files, which
    would show up as new files in the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPIPE_")}
    env.update(PYTHONDONTWRITEBYTECODE="1", MARKETPIPE_API__PORT="0", **extra)
    return env


def checkout_files() -> set[str]:
    """Untracked files and ignored paths of the checkout outside `data/`, as git sees them
    (ignored directories as one entry: `dbt/target/` is new if it was not there before)."""

    def status(*args: str) -> list[str]:
        out = subprocess.run(
            ["git", "status", "--porcelain", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return out.splitlines()

    entries = {line[3:] for line in status("--untracked-files=all") if line[:2] == "??"}
    entries |= {line[3:] for line in status("--ignored") if line[:2] == "!!"}
    return {e for e in entries if not e.startswith("data/") and "__pycache__" not in e}


@dataclass
class DemoRun:
    returncode: int
    output: str
    seconds: float
    # (seconds since the announce line, HTTP status, body) of every health poll.
    health: list[tuple[float, int, dict[str, object]]] = field(default_factory=list)
    new_files: set[str] = field(default_factory=set)


def make_demo(
    duration_s: int, *, dbt_build_after_s: int = 60, until_first_build: bool = False
) -> DemoRun:
    """`make demo DEMO_ARGS="--duration N"` from the repo root, polling health meanwhile.
    With `until_first_build`, the demo is stopped with SIGTERM (as `docker stop` would) a few
    seconds after its first scheduled dbt build has passed, instead of at the duration."""
    before = checkout_files()
    log_path = REPO / "data" / f".make-demo-{os.getpid()}.log"  # inside data/, like the demo
    log_path.parent.mkdir(exist_ok=True)
    env = user_environment(MARKETPIPE_SCHEDULER__DBT_FIRST_BUILD_AFTER_S=str(dbt_build_after_s))
    started = time.monotonic()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            ["make", "demo", f"DEMO_ARGS=--duration {duration_s}"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    run = DemoRun(returncode=-1, output="", seconds=0.0)
    poller: threading.Thread | None = None
    try:
        port = None
        while port is None and process.poll() is None and time.monotonic() - started < 60:
            found = HEALTH_URL.search(log_path.read_text())
            port = int(found[1]) if found else None
            time.sleep(0.2)
        assert port is not None, f"no API announced:\n{log_path.read_text()}"
        # Poll until two seconds before the end: the shutdown closes the venue first.
        stop_polling = threading.Event()
        poller = threading.Thread(
            target=poll_health,
            args=(port, time.monotonic() + duration_s - 2, run.health, stop_polling),
        )
        poller.start()
        if until_first_build:
            while process.poll() is None and not _first_build_done(run.health):
                time.sleep(0.5)
            time.sleep(3)  # health keeps being polled after the build
            stop_polling.set()
            poller.join()
            pid = json.loads((DEMO_DIR / "marketpipe.lock.json").read_text())["pid"]
            os.kill(pid, signal.SIGTERM)
        process.wait(timeout=duration_s + 120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if poller is not None:
            poller.join()
    run.returncode = process.returncode
    run.seconds = time.monotonic() - started
    run.output = log_path.read_text()
    log_path.unlink()
    run.new_files = checkout_files() - before
    return run


def _first_build_done(health: list[tuple[float, int, dict[str, object]]]) -> bool:
    if not health:
        return False
    components = health[-1][2].get("components")
    jobs = components.get("scheduler", {}).get("jobs", {}) if isinstance(components, dict) else {}
    build = jobs.get("dbt_build", {})
    return bool(build.get("runs")) and not build.get("running")


def poll_health(
    port: int,
    until: float,
    into: list[tuple[float, int, dict[str, object]]],
    stop: threading.Event,
) -> None:
    start = time.monotonic()
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < until and not stop.is_set():
            try:
                response = client.get(f"http://127.0.0.1:{port}/api/v1/system/health")
                into.append((time.monotonic() - start, response.status_code, response.json()))
            except httpx.HTTPError as exc:
                into.append((time.monotonic() - start, 0, {"error": str(exc)}))
            time.sleep(0.5)


def stored_ids() -> dict[str, list[int]]:
    """Trade ids per `exchange:symbol` (the demo runs several venues)."""
    store = EmbeddedStore(DEMO_DIR, read_only=True)
    try:
        rows = store.warm.reader().execute(
            "SELECT exchange || ':' || symbol, list(trade_id ORDER BY trade_id) "
            "FROM trades_recent GROUP BY ALL"
        )
        return {key: ids for key, ids in rows.fetchall()}
    finally:
        store.close()


@pytest.fixture(scope="module")
def repo_demo_dir() -> Iterator[Path]:
    """`data/demo` of the checkout, empty for these tests; the user's own is put back after."""
    data = REPO / "data"
    had_data = data.exists()
    saved = data / f"demo.moved-aside-by-tests-{os.getpid()}"
    if DEMO_DIR.exists():
        DEMO_DIR.rename(saved)
    try:
        yield DEMO_DIR
    finally:
        shutil.rmtree(DEMO_DIR, ignore_errors=True)
        if saved.exists():
            saved.rename(DEMO_DIR)
        if not had_data and data.is_dir() and not any(data.iterdir()):
            data.rmdir()


@pytest.fixture(scope="module")
def first_demo(repo_demo_dir: Path) -> DemoRun:
    return make_demo(FIRST_DEMO_S, dbt_build_after_s=2, until_first_build=True)


def test_make_demo_builds_the_marts_keeps_health_200_and_stays_in_data(
    first_demo: DemoRun,
) -> None:
    run = first_demo
    assert run.returncode == 0, run.output
    assert f"-> {DEMO_DIR}" in run.output  # the relative data dir, resolved once
    # Health: 200 from the moment the venue is connected (a second or two) to the end.
    statuses = [(t, status) for t, status, _ in run.health]
    first_ok = next(i for i, (_, status) in enumerate(statuses) if status == 200)
    assert statuses[first_ok][0] < 10, statuses[:first_ok]
    assert all(status == 200 for _, status in statuses[first_ok:]), [
        (t, status, body) for t, status, body in run.health[first_ok:] if status != 200
    ]
    # Polled throughout (every half second, slower under load) until after the build.
    assert len(statuses) - first_ok >= statuses[-1][0] - statuses[first_ok][0] > 5
    last = run.health[-1][2]
    components = last["components"]
    assert isinstance(components, dict)
    dbt_build = components["scheduler"]["jobs"]["dbt_build"]
    assert (dbt_build["runs"], dbt_build["failures"]) == (1, 0), dbt_build
    assert dbt_build["last_error"] is None and dbt_build["last_success"] is not None
    assert "scheduled dbt build passed" in run.output
    assert "Cannot open file" not in run.output
    # The marts were published where the data dir is, and dbt's files stayed in data/demo/dbt.
    assert (DEMO_DIR / "analytics.duckdb").is_file()
    assert not (DEMO_DIR / "dbt" / "data").exists()
    assert run.new_files == set()


def test_dbt_build_with_the_readmes_relative_data_dir(first_demo: DemoRun) -> None:
    assert first_demo.returncode == 0
    before = checkout_files()
    marts = DEMO_DIR / "analytics.duckdb"
    published = marts.stat().st_mtime_ns
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "marketpipe"), "dbt", "build", "--data-dir", "data/demo"],
        cwd=REPO,
        env=user_environment(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Completed successfully" in result.stdout
    assert re.search(r"Done\. PASS=\d+ WARN=0 ERROR=0", result.stdout), result.stdout
    assert marts.stat().st_mtime_ns > published  # published again, in data/demo
    assert not (DEMO_DIR / "dbt" / "data").exists()
    assert checkout_files() - before == set()


def test_second_make_demo_on_the_same_data_dir_stores_trades_from_its_first_seconds(
    first_demo: DemoRun,
) -> None:
    assert first_demo.returncode == 0
    before = stored_ids()
    run = make_demo(SECOND_DEMO_S)
    assert run.returncode == 0, run.output
    totals = [(int(trades), int(dups)) for trades, dups in TOTALS_LINE.findall(run.output)]
    # The console's first totals, five seconds in: hundreds of trades stored. Duplicates are
    # only the few the start-up catch-up over REST and the stream both delivered (stored once).
    assert totals and totals[0][0] > 300 and totals[0][1] < totals[0][0] // 20, totals
    after = stored_ids()
    assert set(after) == set(before)
    for symbol, old in before.items():
        new = after[symbol]
        assert new[: len(old)] == old, symbol  # nothing stored was lost
        assert len(new) > len(old)
        if not has_sequential_ids(symbol.split(":")[0]):
            continue  # Finnhub's keys: no sequence to continue, and no gap to prove
        # The second run continued the ids: one unbroken run of ids, longer than before.
        assert new == list(range(old[0], old[0] + len(new))), symbol
    assert run.new_files == set()


def test_run_offline_says_so_in_one_line_keeps_retrying_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    # Bound, never listening: every connection to it is refused.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    env = user_environment(
        MARKETPIPE_BINANCE__WS_URL=f"ws://127.0.0.1:{port}",
        MARKETPIPE_BINANCE__REST_URL=f"http://127.0.0.1:{port}",
        MARKETPIPE_SCHEDULER__ENABLED="false",
        MARKETPIPE_LOG_FORMAT="json",
    )
    log_path = tmp_path / "run.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "marketpipe.cli", "run", "--data-dir", "data"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        expected = (
            f"cannot reach Binance at ws://127.0.0.1:{port} (ConnectionRefusedError: [Errno 111] "
            f"Connect call failed ('127.0.0.1', {port})); retrying. Check the network and any "
            "proxy or firewall, or point MARKETPIPE_BINANCE__WS_URL (and "
            "MARKETPIPE_BINANCE__REST_URL) at a reachable endpoint. Offline? `make demo` runs "
            "the whole pipeline against a local simulated exchange."
        )
        started = time.monotonic()
        while expected not in log_path.read_text() and time.monotonic() - started < 15:
            assert process.poll() is None, log_path.read_text()
            time.sleep(0.1)
        said_after = time.monotonic() - started
        lines = log_path.read_text().splitlines()
        assert expected in lines, "\n".join(lines)
        assert said_after < 15  # including the interpreter's start, on a loaded machine
        # It keeps retrying (each attempt in the structured log), and says it only once.
        time.sleep(3)
        assert process.poll() is None
        text = log_path.read_text()
        assert text.count("cannot reach Binance") == 1
        assert len(re.findall(r"connect binance-ws-0 failed", text)) >= 3
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0, log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        closed.close()
    assert "stopped" in log_path.read_text().splitlines()
    assert not (tmp_path / "data" / "marketpipe.lock.json").exists()
